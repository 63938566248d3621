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

    /**
     * Four rows at a time, one accumulator each (the ILP without changing any row's order), in the
     * {@link Contract} order. Half widens exactly.
     */
    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        for (int r = r0; r < r1; r += 4) {
            // Past the range end the last row repeats: results are per row, so a duplicate is harmless.
            int ra = r, rb = Math.min(r + 1, r1 - 1), rc = Math.min(r + 2, r1 - 1), rd = Math.min(r + 3, r1 - 1);
            long b0 = (long) ra * cols * 2, b1 = (long) rb * cols * 2, b2 = (long) rc * cols * 2, b3 = (long) rd * cols * 2;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
                int k1 = Math.min(cols, k0 + Contract.CHUNK);
                int body = k1 - (k1 - k0) % L;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                int c = k0;
                for (; c < body; c += L) {
                    FloatVector u = FloatVector.fromArray(F, x, xOff + c);
                    a0 = Simd.f16(data, b0 + 2L * c).fma(u, a0);
                    a1 = Simd.f16(data, b1 + 2L * c).fma(u, a1);
                    a2 = Simd.f16(data, b2 + 2L * c).fma(u, a2);
                    a3 = Simd.f16(data, b3 + 2L * c).fma(u, a3);
                }
                float p0 = Simd.sumLanes(a0), p1 = Simd.sumLanes(a1), p2 = Simd.sumLanes(a2), p3 = Simd.sumLanes(a3);
                for (; c < k1; c++) {
                    float u = x[xOff + c];
                    p0 += Float.float16ToFloat(data.get(U16, b0 + 2L * c)) * u;
                    p1 += Float.float16ToFloat(data.get(U16, b1 + 2L * c)) * u;
                    p2 += Float.float16ToFloat(data.get(U16, b2 + 2L * c)) * u;
                    p3 += Float.float16ToFloat(data.get(U16, b3 + 2L * c)) * u;
                }
                if (k0 == 0) {
                    s0 = p0;
                    s1 = p1;
                    s2 = p2;
                    s3 = p3;
                } else {
                    s0 += p0;
                    s1 += p1;
                    s2 += p2;
                    s3 += p3;
                }
            }
            out[oOff + rd] = s3;
            out[oOff + rc] = s2;
            out[oOff + rb] = s1;
            out[oOff + ra] = s0;
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
