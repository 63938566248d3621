package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.I;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.LE;
import static dev.epic.kernels.Simd.S;
import static jdk.incubator.vector.VectorOperators.LSHL;
import static jdk.incubator.vector.VectorOperators.S2I;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;

final class Bf16Matrix extends DenseMatrix {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    Bf16Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 2);
    }

    @Override
    public WeightLayout layout() {
        return WeightLayout.plain(WeightLayout.Format.BF16, data);
    }

    /** bf16 is the top half of an fp32: widening is exact. */
    static float widen(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    /**
     * The widening (bf16 bits shifted into the top half of an int) is written out here rather than
     * called: Vector API methods are always inlined, but a helper of ours inlined into a large caller
     * (the GEMV driver, the GEMM) can fall outside C2's inlining budget, and then every vector it
     * returns is boxed (seen: the MoE gate's bf16 GEMV several times slower in a q4 run).
     */
    @Override
    void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * cols * 2, b1 = (long) rb * cols * 2, b2 = (long) rc * cols * 2, b3 = (long) rd * cols * 2;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = k0; c < body; c += L) {
            FloatVector u = FloatVector.fromArray(F, x, xOff + c);
            a0 = ((IntVector) ShortVector.fromMemorySegment(S, data, b0 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats().fma(u, a0);
            a1 = ((IntVector) ShortVector.fromMemorySegment(S, data, b1 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats().fma(u, a1);
            a2 = ((IntVector) ShortVector.fromMemorySegment(S, data, b2 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats().fma(u, a2);
            a3 = ((IntVector) ShortVector.fromMemorySegment(S, data, b3 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats().fma(u, a3);
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
            ((IntVector) ShortVector.fromMemorySegment(S, data, base + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats().intoArray(dst, off + c - c0);
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
