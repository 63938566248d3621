package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;

final class Bf16Matrix extends DenseMatrix {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    Bf16Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 2);
    }

    /** bf16 is the top half of an fp32: widening is exact. */
    static float widen(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    @Override
    void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * cols * 2, b1 = (long) rb * cols * 2, b2 = (long) rc * cols * 2, b3 = (long) rd * cols * 2;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = k0; c < body; c += L) {
            FloatVector u = FloatVector.fromArray(F, x, xOff + c);
            a0 = Simd.bf16(data, b0 + 2L * c).fma(u, a0);
            a1 = Simd.bf16(data, b1 + 2L * c).fma(u, a1);
            a2 = Simd.bf16(data, b2 + 2L * c).fma(u, a2);
            a3 = Simd.bf16(data, b3 + 2L * c).fma(u, a3);
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
    }

    @Override
    float weight(int r, int c) {
        return widen(data.get(U16, ((long) r * cols + c) * 2));
    }

    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        long base = (long) r * cols * 2;
        int c = c0;
        for (; c + L <= c1; c += L) {
            Simd.bf16(data, base + 2L * c).intoArray(dst, off + c - c0);
        }
        for (; c < c1; c++) {
            dst[off + c - c0] = widen(data.get(U16, base + 2L * c));
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 2;
    }
}
