package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.LE;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;

final class F32Matrix extends DenseMatrix {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    F32Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 4);
    }

    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        int body4 = cols - cols % (4 * L);
        int body = cols - cols % L;
        for (int r = r0; r < r1; r++) {
            long base = (long) r * cols * 4;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            int c = 0;
            for (; c < body4; c += 4 * L) {
                long o = base + 4L * c;
                a0 = FloatVector.fromMemorySegment(F, data, o, LE).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                a1 = FloatVector.fromMemorySegment(F, data, o + 4L * L, LE)
                        .fma(FloatVector.fromArray(F, x, xOff + c + L), a1);
                a2 = FloatVector.fromMemorySegment(F, data, o + 8L * L, LE)
                        .fma(FloatVector.fromArray(F, x, xOff + c + 2 * L), a2);
                a3 = FloatVector.fromMemorySegment(F, data, o + 12L * L, LE)
                        .fma(FloatVector.fromArray(F, x, xOff + c + 3 * L), a3);
            }
            for (; c < body; c += L) {
                a0 = FloatVector.fromMemorySegment(F, data, base + 4L * c, LE)
                        .fma(FloatVector.fromArray(F, x, xOff + c), a0);
            }
            float sum = Simd.sum(a0, a1, a2, a3);
            for (; c < cols; c++) {
                sum += data.get(F32, base + 4L * c) * x[xOff + c];
            }
            out[oOff + r] = sum;
        }
    }

    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        MemorySegment.copy(data, F32, ((long) r * cols + c0) * 4, dst, off, c1 - c0);
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 4;
    }
}
