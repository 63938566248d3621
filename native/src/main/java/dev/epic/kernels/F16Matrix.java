package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;

final class F16Matrix extends DenseMatrix {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    F16Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 2);
    }

    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        int body4 = cols - cols % (4 * L);
        int body = cols - cols % L;
        for (int r = r0; r < r1; r++) {
            long base = (long) r * cols * 2;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
            int c = 0;
            for (; c < body4; c += 4 * L) {
                long o = base + 2L * c;
                a0 = Simd.f16(data, o).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                a1 = Simd.f16(data, o + 2L * L).fma(FloatVector.fromArray(F, x, xOff + c + L), a1);
                a2 = Simd.f16(data, o + 4L * L).fma(FloatVector.fromArray(F, x, xOff + c + 2 * L), a2);
                a3 = Simd.f16(data, o + 6L * L).fma(FloatVector.fromArray(F, x, xOff + c + 3 * L), a3);
            }
            for (; c < body; c += L) {
                a0 = Simd.f16(data, base + 2L * c).fma(FloatVector.fromArray(F, x, xOff + c), a0);
            }
            float sum = Simd.sum(a0, a1, a2, a3);
            for (; c < cols; c++) {
                sum += Float.float16ToFloat(data.get(U16, base + 2L * c)) * x[xOff + c];
            }
            out[oOff + r] = sum;
        }
    }

    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        long base = (long) r * cols * 2;
        int c = c0;
        for (; c + L <= c1; c += L) {
            Simd.f16(data, base + 2L * c).intoArray(dst, off + c - c0);
        }
        for (; c < c1; c++) {
            dst[off + c - c0] = Float.float16ToFloat(data.get(U16, base + 2L * c));
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 2;
    }
}
