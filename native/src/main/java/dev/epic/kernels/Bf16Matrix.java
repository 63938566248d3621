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
        return Bf16.widen(bits);
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

    /**
     * Up to four inputs per pass: widening is half of bf16's vector work, so widening each weight
     * once for all of them (an expert's few tokens, a sequence's drafted tokens) nearly halves a
     * second input's cost. Three run as four with the last repeated.
     */
    @Override
    int batchRows() {
        return 4;
    }

    /**
     * With the widening shared by four inputs, the fused GEMV beats the tiled GEMM up to 8 rows:
     * bench-v3 bf16 on 2 cores (2026-11-27), batch 5 114.6 -> 170.5 tok/s, batch 8 134.0 -> 202.1
     * (GEMM above 4 rows against fused up to 8, same run).
     */
    @Override
    int smallBatch() {
        return 8;
    }

    /** {@link #chunk4} for inputs at x0 and x1: each weight vector widened once, FMA'd in the same order as two calls. */
    @Override
    void chunk4x2(float[] x, int x0, int x1, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * cols * 2, b1 = (long) rb * cols * 2, b2 = (long) rc * cols * 2, b3 = (long) rd * cols * 2;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int c = k0; c < body; c += L) {
            FloatVector w0 = ((IntVector) ShortVector.fromMemorySegment(S, data, b0 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector w1 = ((IntVector) ShortVector.fromMemorySegment(S, data, b1 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector w2 = ((IntVector) ShortVector.fromMemorySegment(S, data, b2 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector w3 = ((IntVector) ShortVector.fromMemorySegment(S, data, b3 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector u = FloatVector.fromArray(F, x, x0 + c);
            a0 = w0.fma(u, a0);
            a1 = w1.fma(u, a1);
            a2 = w2.fma(u, a2);
            a3 = w3.fma(u, a3);
            u = FloatVector.fromArray(F, x, x1 + c);
            c0 = w0.fma(u, c0);
            c1 = w1.fma(u, c1);
            c2 = w2.fma(u, c2);
            c3 = w3.fma(u, c3);
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
        c0.intoArray(acc, 4 * L);
        c1.intoArray(acc, 5 * L);
        c2.intoArray(acc, 6 * L);
        c3.intoArray(acc, 7 * L);
    }

    /** As {@link #chunk4x2} for four inputs (16 accumulators, 4 weights and an input: 21 of 32 registers). */
    @Override
    void chunk4x4(float[] x, int x0, int x1, int x2, int x3, int ra, int rb, int rc, int rd, int k0, int body,
            float[] acc) {
        long b0 = (long) ra * cols * 2, b1 = (long) rb * cols * 2, b2 = (long) rc * cols * 2, b3 = (long) rd * cols * 2;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        FloatVector e0 = a0, e1 = a0, e2 = a0, e3 = a0, g0 = a0, g1 = a0, g2 = a0, g3 = a0;
        for (int c = k0; c < body; c += L) {
            FloatVector w0 = ((IntVector) ShortVector.fromMemorySegment(S, data, b0 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector w1 = ((IntVector) ShortVector.fromMemorySegment(S, data, b1 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector w2 = ((IntVector) ShortVector.fromMemorySegment(S, data, b2 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector w3 = ((IntVector) ShortVector.fromMemorySegment(S, data, b3 + 2L * c, LE).convertShape(S2I, I, 0))
                    .lanewise(LSHL, 16).reinterpretAsFloats();
            FloatVector u = FloatVector.fromArray(F, x, x0 + c);
            a0 = w0.fma(u, a0);
            a1 = w1.fma(u, a1);
            a2 = w2.fma(u, a2);
            a3 = w3.fma(u, a3);
            u = FloatVector.fromArray(F, x, x1 + c);
            c0 = w0.fma(u, c0);
            c1 = w1.fma(u, c1);
            c2 = w2.fma(u, c2);
            c3 = w3.fma(u, c3);
            u = FloatVector.fromArray(F, x, x2 + c);
            e0 = w0.fma(u, e0);
            e1 = w1.fma(u, e1);
            e2 = w2.fma(u, e2);
            e3 = w3.fma(u, e3);
            u = FloatVector.fromArray(F, x, x3 + c);
            g0 = w0.fma(u, g0);
            g1 = w1.fma(u, g1);
            g2 = w2.fma(u, g2);
            g3 = w3.fma(u, g3);
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
        c0.intoArray(acc, 4 * L);
        c1.intoArray(acc, 5 * L);
        c2.intoArray(acc, 6 * L);
        c3.intoArray(acc, 7 * L);
        e0.intoArray(acc, 8 * L);
        e1.intoArray(acc, 9 * L);
        e2.intoArray(acc, 10 * L);
        e3.intoArray(acc, 11 * L);
        g0.intoArray(acc, 12 * L);
        g1.intoArray(acc, 13 * L);
        g2.intoArray(acc, 14 * L);
        g3.intoArray(acc, 15 * L);
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
