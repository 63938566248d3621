package dev.epic.kernels;

import static dev.epic.kernels.Simd.B;
import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.I;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.LE;
import static jdk.incubator.vector.VectorOperators.I2F;
import static jdk.incubator.vector.VectorOperators.LSHR;
import static jdk.incubator.vector.VectorOperators.ZERO_EXTEND_B2I;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Q4_0-style weights: W[r,c] = (code - 8) * scale[r, c/32], 4-bit codes. A group's 16 code bytes hold
 * column j in the low nibble and column j+16 in the high nibble of byte j (llama.cpp's order), so one
 * byte load yields two fp32 vectors that line up with two contiguous activation vectors.
 * 0.625 bytes per weight; activations stay fp32.
 */
final class Q4Matrix extends GroupQuantMatrix {
    private static final int HALF = GROUP / 2;
    static final int CODE_BYTES_PER_GROUP = HALF;
    /** code - 8 for the 16 codes, exact in fp32; times a group's scale it is that group's weight table. */
    private static final FloatVector LEVELS = FloatVector.fromArray(F,
            new float[] {-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0);

    Q4Matrix(MemorySegment codes, MemorySegment scales, int rows, int cols) {
        super(codes, scales, rows, cols, CODE_BYTES_PER_GROUP);
    }

    @Override
    String format() {
        return "q4";
    }

    private int code(int r, int c) {
        int g = c / GROUP, j = c % GROUP;
        int b = data.get(ValueLayout.JAVA_BYTE, (long) r * groups * HALF + (long) g * HALF + (j % HALF));
        return j < HALF ? b & 0xf : (b >> 4) & 0xf;
    }

    @Override
    float weight(int r, int c) {
        return (code(r, c) - 8) * scale(r, c / GROUP);
    }

    /** The fused loop needs whole groups; a partial last group goes through decode. */
    @Override
    boolean fused(int ra, int rb, int rc, int rd) {
        return cols % GROUP == 0;
    }

    /**
     * Two passes of two rows: four rows of nibble decoding in one loop body outgrow C2's inlining
     * budget (a vector op left out of line is boxed, and ~10x slower).
     */
    @Override
    void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        if (L == HALF) {
            chunk4Lookup(x, xOff, ra, rb, rc, rd, k0, body, acc);
            return;
        }
        for (int h = 0; h < 2; h++) {
            long b0 = (long) (h == 0 ? ra : rc) * groups * HALF, b1 = (long) (h == 0 ? rb : rd) * groups * HALF;
            int r0 = h == 0 ? ra : rc, r1 = h == 0 ? rb : rd;
            FloatVector a0 = FloatVector.zero(F), a1 = a0;
            // Only used when cols % GROUP == 0: chunks are whole groups.
            for (int c = k0; c < body; c += GROUP) {
                int g = c / GROUP;
                long o = (long) g * HALF;
                FloatVector s0 = FloatVector.broadcast(F, scale(r0, g)), s1 = FloatVector.broadcast(F, scale(r1, g));
                // Columns in ascending order: all low nibbles (c .. c+15), then the high ones.
                for (int j = 0; j < HALF; j += L) {
                    FloatVector u = FloatVector.fromArray(F, x, xOff + c + j);
                    a0 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, data, b0 + o + j, LE)
                            .convertShape(ZERO_EXTEND_B2I, I, 0)).and(0xf).sub(8).convert(I2F, 0)).mul(s0).fma(u, a0);
                    a1 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, data, b1 + o + j, LE)
                            .convertShape(ZERO_EXTEND_B2I, I, 0)).and(0xf).sub(8).convert(I2F, 0)).mul(s1).fma(u, a1);
                }
                for (int j = 0; j < HALF; j += L) {
                    FloatVector u = FloatVector.fromArray(F, x, xOff + c + HALF + j);
                    a0 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, data, b0 + o + j, LE)
                            .convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).sub(8).convert(I2F, 0)).mul(s0).fma(u, a0);
                    a1 = ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(B, data, b1 + o + j, LE)
                            .convertShape(ZERO_EXTEND_B2I, I, 0)).lanewise(LSHR, 4).sub(8).convert(I2F, 0)).mul(s1).fma(u, a1);
                }
            }
            a0.intoArray(acc, 2 * h * L);
            a1.intoArray(acc, (2 * h + 1) * L);
        }
    }

    /**
     * L = 16: a group's 16 possible weights (code - 8) * scale fill one vector, so each weight is a
     * lane lookup (selectFrom wraps the index to its low 4 bits: the low nibble; the high one is a
     * shift away). One code load per row serves both halves of the group; low nibbles (c .. c+15)
     * first, in ascending column order. Four rows in one loop: four independent FMA chains.
     */
    private void chunk4Lookup(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * groups * HALF, b1 = (long) rb * groups * HALF;
        long b2 = (long) rc * groups * HALF, b3 = (long) rd * groups * HALF;
        long s0 = 4L * ra * groups, s1 = 4L * rb * groups, s2 = 4L * rc * groups, s3 = 4L * rd * groups;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        // The group index is the loop variable, so every offset is linear in it and C2 hoists the
        // bounds checks of the code, scale and activation reads out of the loop.
        for (int g = k0 / GROUP, g1 = body / GROUP; g < g1; g++) {
            long o = (long) g * HALF, so = 4L * g;
            IntVector t0 = LEVELS.mul(scales.get(F32, s0 + so)).reinterpretAsInts();
            IntVector t1 = LEVELS.mul(scales.get(F32, s1 + so)).reinterpretAsInts();
            IntVector t2 = LEVELS.mul(scales.get(F32, s2 + so)).reinterpretAsInts();
            IntVector t3 = LEVELS.mul(scales.get(F32, s3 + so)).reinterpretAsInts();
            // The codes widened in place: a helper returning a vector can be left out of line by C2,
            // and then boxes (see Bf16Matrix#chunk4).
            IntVector q0 = (IntVector) ByteVector.fromMemorySegment(B, data, b0 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector q1 = (IntVector) ByteVector.fromMemorySegment(B, data, b1 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector q2 = (IntVector) ByteVector.fromMemorySegment(B, data, b2 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector q3 = (IntVector) ByteVector.fromMemorySegment(B, data, b3 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            int c = xOff + g * GROUP;
            FloatVector u = FloatVector.fromArray(F, x, c);
            a0 = q0.selectFrom(t0).reinterpretAsFloats().fma(u, a0);
            a1 = q1.selectFrom(t1).reinterpretAsFloats().fma(u, a1);
            a2 = q2.selectFrom(t2).reinterpretAsFloats().fma(u, a2);
            a3 = q3.selectFrom(t3).reinterpretAsFloats().fma(u, a3);
            u = FloatVector.fromArray(F, x, c + HALF);
            a0 = q0.lanewise(VectorOperators.LSHR, 4).selectFrom(t0).reinterpretAsFloats().fma(u, a0);
            a1 = q1.lanewise(VectorOperators.LSHR, 4).selectFrom(t1).reinterpretAsFloats().fma(u, a1);
            a2 = q2.lanewise(VectorOperators.LSHR, 4).selectFrom(t2).reinterpretAsFloats().fma(u, a2);
            a3 = q3.lanewise(VectorOperators.LSHR, 4).selectFrom(t3).reinterpretAsFloats().fma(u, a3);
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
    }

    /**
     * With three inputs per pass the fused GEMV beats the tiled GEMM up to batch 6 (2-core AVX-512 box,
     * 256x1024: batch 6 47 against 64 us, batch 8 70 against 70 us).
     */
    @Override
    int smallBatch() {
        return L == HALF ? 6 : super.smallBatch();
    }

    /** Up to three inputs per pass: widening is most of q4's work, and an expert's few tokens share it. */
    @Override
    int batchRows() {
        return L == HALF ? 3 : 1;
    }

    @Override
    void chunk4Batch(float[] x, int xOff, int nb, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        if (nb == 1) {
            chunk4(x, xOff, ra, rb, rc, rd, k0, body, acc);
        } else {
            // Two inputs run as three with the second repeated: its extra FMAs cost less than a second pass.
            chunk4Lookup3(x, xOff, xOff + cols, xOff + (nb - 1) * cols, ra, rb, rc, rd, k0, body, acc);
        }
    }

    /**
     * {@link #chunk4Lookup} for three inputs at x0, x1, x2 at once: each weight vector is looked up once
     * and FMA'd into three accumulators, in the same order as three separate calls.
     */
    private void chunk4Lookup3(float[] x, int x0, int x1, int x2, int ra, int rb, int rc, int rd, int k0, int body,
            float[] acc) {
        long b0 = (long) ra * groups * HALF, b1 = (long) rb * groups * HALF;
        long b2 = (long) rc * groups * HALF, b3 = (long) rd * groups * HALF;
        long s0 = 4L * ra * groups, s1 = 4L * rb * groups, s2 = 4L * rc * groups, s3 = 4L * rd * groups;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        FloatVector c0 = a0, c1 = a0, c2 = a0, c3 = a0, e0 = a0, e1 = a0, e2 = a0, e3 = a0;
        for (int g = k0 / GROUP, g1 = body / GROUP; g < g1; g++) {
            long o = (long) g * HALF, so = 4L * g;
            int c = g * GROUP;
            // The codes widened in place: a helper returning a vector can be left out of line by C2,
            // and then boxes (see Bf16Matrix#chunk4).
            IntVector q0 = (IntVector) ByteVector.fromMemorySegment(B, data, b0 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector q1 = (IntVector) ByteVector.fromMemorySegment(B, data, b1 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector q2 = (IntVector) ByteVector.fromMemorySegment(B, data, b2 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector q3 = (IntVector) ByteVector.fromMemorySegment(B, data, b3 + o, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            IntVector t = LEVELS.mul(scales.get(F32, s0 + so)).reinterpretAsInts();
            FloatVector w0 = q0.selectFrom(t).reinterpretAsFloats();
            FloatVector h0 = q0.lanewise(VectorOperators.LSHR, 4).selectFrom(t).reinterpretAsFloats();
            t = LEVELS.mul(scales.get(F32, s1 + so)).reinterpretAsInts();
            FloatVector w1 = q1.selectFrom(t).reinterpretAsFloats();
            FloatVector h1 = q1.lanewise(VectorOperators.LSHR, 4).selectFrom(t).reinterpretAsFloats();
            t = LEVELS.mul(scales.get(F32, s2 + so)).reinterpretAsInts();
            FloatVector w2 = q2.selectFrom(t).reinterpretAsFloats();
            FloatVector h2 = q2.lanewise(VectorOperators.LSHR, 4).selectFrom(t).reinterpretAsFloats();
            t = LEVELS.mul(scales.get(F32, s3 + so)).reinterpretAsInts();
            FloatVector w3 = q3.selectFrom(t).reinterpretAsFloats();
            FloatVector h3 = q3.lanewise(VectorOperators.LSHR, 4).selectFrom(t).reinterpretAsFloats();
            // Per input: low nibbles (columns c .. c+15) first, then the high ones, as chunk4Lookup.
            FloatVector u = FloatVector.fromArray(F, x, x0 + c), v = FloatVector.fromArray(F, x, x0 + c + HALF);
            a0 = h0.fma(v, w0.fma(u, a0));
            a1 = h1.fma(v, w1.fma(u, a1));
            a2 = h2.fma(v, w2.fma(u, a2));
            a3 = h3.fma(v, w3.fma(u, a3));
            u = FloatVector.fromArray(F, x, x1 + c);
            v = FloatVector.fromArray(F, x, x1 + c + HALF);
            c0 = h0.fma(v, w0.fma(u, c0));
            c1 = h1.fma(v, w1.fma(u, c1));
            c2 = h2.fma(v, w2.fma(u, c2));
            c3 = h3.fma(v, w3.fma(u, c3));
            u = FloatVector.fromArray(F, x, x2 + c);
            v = FloatVector.fromArray(F, x, x2 + c + HALF);
            e0 = h0.fma(v, w0.fma(u, e0));
            e1 = h1.fma(v, w1.fma(u, e1));
            e2 = h2.fma(v, w2.fma(u, e2));
            e3 = h3.fma(v, w3.fma(u, e3));
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
    }

    /** Weights (code - 8) * scale, each rounded once; vectors built in place (see Bf16Matrix#chunk4). */
    @Override
    void decodeGroup(int r, int g, float[] dst, int off) {
        long o = (long) r * groups * HALF + (long) g * HALF;
        float s = scale(r, g);
        for (int j = 0; j < HALF; j += L) {
            IntVector b = (IntVector) ByteVector.fromMemorySegment(B, data, o + j, LE).convertShape(ZERO_EXTEND_B2I, I, 0);
            ((FloatVector) b.and(0xf).sub(8).convert(I2F, 0)).mul(s).intoArray(dst, off + j);
            ((FloatVector) b.lanewise(LSHR, 4).sub(8).convert(I2F, 0)).mul(s).intoArray(dst, off + HALF + j);
        }
    }

    /**
     * Quantises src like llama.cpp Q4_0: d = m / -8 where m is the group's value of largest magnitude,
     * code = min(15, floor(w / d + 8.5)). Error <= |d| / 2, except the clamped code 15 (w/d >= 7.5)
     * whose error is <= |d|.
     */
    static Q4Matrix quantize(Matrix src, Arena arena) {
        int rows = src.rows(), cols = src.cols(), groups = Math.ceilDiv(cols, GROUP);
        MemorySegment codes = arena.allocate((long) rows * groups * HALF, 64);
        MemorySegment scales = arena.allocate((long) rows * groups * 4, 64);
        float[] row = new float[groups * GROUP];
        int[] q = new int[GROUP];
        for (int r = 0; r < rows; r++) {
            src.row(r, row, 0);
            for (int g = 0; g < groups; g++) {
                float max = 0f;
                for (int j = g * GROUP; j < (g + 1) * GROUP; j++) {
                    if (Math.abs(row[j]) > Math.abs(max)) {
                        max = row[j];
                    }
                    if (!Float.isFinite(row[j])) {
                        throw new IllegalArgumentException("q4: row " + r + " has a non-finite weight at column " + j);
                    }
                }
                float d = max / -8f;
                float inv = d == 0f ? 0f : 1f / d;
                for (int j = 0; j < GROUP; j++) {
                    q[j] = Math.min(15, (int) (row[g * GROUP + j] * inv + 8.5f));
                }
                long o = (long) r * groups * HALF + (long) g * HALF;
                for (int j = 0; j < HALF; j++) {
                    codes.set(ValueLayout.JAVA_BYTE, o + j, (byte) (q[j] | q[j + HALF] << 4));
                }
                scales.set(F32, 4L * ((long) r * groups + g), d);
            }
            java.util.Arrays.fill(row, 0f);
        }
        return new Q4Matrix(codes, scales, rows, cols);
    }
}
