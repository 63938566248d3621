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

    /**
     * Four rows at a time, one accumulator each (the ILP without changing any row's order), in the
     * {@link Contract} order. 
     */
    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        for (int r = r0; r < r1; r += 4) {
            // Past the range end the last row repeats: results are per row, so a duplicate is harmless.
            int ra = r, rb = Math.min(r + 1, r1 - 1), rc = Math.min(r + 2, r1 - 1), rd = Math.min(r + 3, r1 - 1);
            long b0 = (long) ra * cols * 4, b1 = (long) rb * cols * 4, b2 = (long) rc * cols * 4, b3 = (long) rd * cols * 4;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
                int k1 = Math.min(cols, k0 + Contract.CHUNK);
                int body = k1 - (k1 - k0) % L;
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                int c = k0;
                for (; c < body; c += L) {
                    FloatVector u = FloatVector.fromArray(F, x, xOff + c);
                    a0 = FloatVector.fromMemorySegment(F, data, b0 + 4L * c, LE).fma(u, a0);
                    a1 = FloatVector.fromMemorySegment(F, data, b1 + 4L * c, LE).fma(u, a1);
                    a2 = FloatVector.fromMemorySegment(F, data, b2 + 4L * c, LE).fma(u, a2);
                    a3 = FloatVector.fromMemorySegment(F, data, b3 + 4L * c, LE).fma(u, a3);
                }
                float p0 = Simd.sumLanes(a0), p1 = Simd.sumLanes(a1), p2 = Simd.sumLanes(a2), p3 = Simd.sumLanes(a3);
                for (; c < k1; c++) {
                    float u = x[xOff + c];
                    p0 += data.get(F32, b0 + 4L * c) * u;
                    p1 += data.get(F32, b1 + 4L * c) * u;
                    p2 += data.get(F32, b2 + 4L * c) * u;
                    p3 += data.get(F32, b3 + 4L * c) * u;
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
        MemorySegment.copy(data, F32, ((long) r * cols + c0) * 4, dst, off, c1 - c0);
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 4;
    }
}
