package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Random;

/** Test data builders and the plain double-precision reference matmul. */
final class Reference {
    static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /**
     * Relative tolerance against sum_c |w x|: the kernels add each product rounded once into one of
     * up to 64 fp32 partial sums, ~n/64 + 10 sequential roundings of 2^-24 each; for n <= 2100 that
     * is < 5e-6. 1e-5 leaves headroom without hiding a wrong element (one missing product of a
     * random row is ~1e-2 relative).
     */
    static final double REL = 1e-5;

    private Reference() {}

    static float[] randomFloats(Random rnd, int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) rnd.nextGaussian();
        }
        return v;
    }

    /** Exact fp32 weights of any matrix, decoded by the caller-supplied scalar reference. */
    interface Weights {
        float at(int r, int c);
    }

    /** Checks m.matmul against a double-precision sum over the given exact weights. */
    static void checkMatmul(String what, Matrix m, Weights w, int batch, Random rnd) {
        int rows = m.rows(), cols = m.cols();
        float[] x = randomFloats(rnd, batch * cols);
        float[] out = new float[batch * rows];
        m.matmul(x, out, batch);
        for (int b = 0; b < batch; b++) {
            for (int r = 0; r < rows; r++) {
                double sum = 0, abs = 0;
                for (int c = 0; c < cols; c++) {
                    double p = (double) w.at(r, c) * x[b * cols + c];
                    sum += p;
                    abs += Math.abs(p);
                }
                double err = Math.abs(out[b * rows + r] - sum);
                if (!(err <= REL * abs + 1e-30)) {
                    assertEquals(sum, out[b * rows + r], REL * abs,
                            what + " [" + rows + "x" + cols + "] batch " + batch + " at b=" + b + " r=" + r);
                }
            }
        }
    }

    /** Checks m.row against the exact weights, bit for bit. */
    static void checkRows(String what, Matrix m, Weights w) {
        float[] dst = new float[m.cols() + 3];
        for (int r = 0; r < m.rows(); r++) {
            m.row(r, dst, 3);
            for (int c = 0; c < m.cols(); c++) {
                float want = w.at(r, c);
                assertTrue(Float.floatToIntBits(want) == Float.floatToIntBits(dst[3 + c]),
                        what + " row " + r + " col " + c + ": want " + want + " got " + dst[3 + c]);
            }
        }
    }

    static MemorySegment bf16Random(Arena arena, Random rnd, int rows, int cols) {
        MemorySegment s = arena.allocate(2L * rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            s.set(U16, 2 * i, (short) (Float.floatToIntBits((float) rnd.nextGaussian()) >>> 16));
        }
        return s;
    }
}
