package dev.epic.kernels;

import static dev.epic.kernels.Simd.B;
import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.LE;
import static jdk.incubator.vector.VectorOperators.B2F;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;

/**
 * Q8_0-style weights: W[r,c] = code * scale[r, c/32], int8 codes in [-127, 127]. 1.125 bytes per
 * weight. Activations stay fp32: each group's code vectors are widened to fp32 in registers, dotted
 * with x, and the group sum is scaled once.
 */
final class Q8Matrix extends GroupQuantMatrix {
    static final int CODE_BYTES_PER_GROUP = GROUP;

    Q8Matrix(MemorySegment codes, MemorySegment scales, int rows, int cols) {
        super(codes, scales, rows, cols, CODE_BYTES_PER_GROUP);
    }

    @Override
    String format() {
        return "q8";
    }

    @Override
    float weight(int r, int c) {
        return data.get(ValueLayout.JAVA_BYTE, (long) r * groups * GROUP + c) * scale(r, c / GROUP);
    }

    /** The fused loop needs whole groups; a partial last group goes through decode. */
    @Override
    boolean fused(int ra, int rb, int rc, int rd) {
        return cols % GROUP == 0;
    }

    /**
     * Each weight widened as {@link #decodeGroup} does (code * scale rounded once), then FMA'd with x;
     * the widening written out, not called (see Bf16Matrix#chunk4).
     */
    @Override
    void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * groups * GROUP, b1 = (long) rb * groups * GROUP, b2 = (long) rc * groups * GROUP, b3 = (long) rd * groups * GROUP;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        // Only used when cols % GROUP == 0: chunks are whole groups.
        for (int c = k0; c < body; c += GROUP) {
            int g = c / GROUP;
            long o = (long) g * GROUP;
            FloatVector s0 = FloatVector.broadcast(F, scale(ra, g)), s1 = FloatVector.broadcast(F, scale(rb, g));
            FloatVector s2 = FloatVector.broadcast(F, scale(rc, g)), s3 = FloatVector.broadcast(F, scale(rd, g));
            for (int j = 0; j < GROUP; j += L) {
                FloatVector u = FloatVector.fromArray(F, x, xOff + c + j);
                a0 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b0 + o + j, LE).convertShape(B2F, F, 0)).mul(s0).fma(u, a0);
                a1 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b1 + o + j, LE).convertShape(B2F, F, 0)).mul(s1).fma(u, a1);
                a2 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b2 + o + j, LE).convertShape(B2F, F, 0)).mul(s2).fma(u, a2);
                a3 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b3 + o + j, LE).convertShape(B2F, F, 0)).mul(s3).fma(u, a3);
            }
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
    }

    /**
     * Up to four inputs per pass, each weight widened once for all of them (as bf16 and fp8); three
     * run as four with the last repeated.
     */
    @Override
    int batchRows() {
        return 4;
    }

    /**
     * With the widening shared, the fused GEMV beats the tiled GEMM up to 8 rows (4096x1024, 2 cores:
     * batch 4 186 against 326 us, batch 8 377 against 449 us; batch 2 229 -> 170 us, batch 3 388 -> 218).
     */
    @Override
    int smallBatch() {
        return 8;
    }

    /** {@link #chunk4} for inputs at x0 and x1: each weight widened once, FMA'd in the same order as two calls. */
    @Override
    void chunk4x2(float[] x, int x0, int x1, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * groups * GROUP, b1 = (long) rb * groups * GROUP, b2 = (long) rc * groups * GROUP, b3 = (long) rd * groups * GROUP;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int c = k0; c < body; c += GROUP) {
            int g = c / GROUP;
            long o = (long) g * GROUP;
            FloatVector s0 = FloatVector.broadcast(F, scale(ra, g)), s1 = FloatVector.broadcast(F, scale(rb, g));
            FloatVector s2 = FloatVector.broadcast(F, scale(rc, g)), s3 = FloatVector.broadcast(F, scale(rd, g));
            for (int j = 0; j < GROUP; j += L) {
                FloatVector w0 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b0 + o + j, LE).convertShape(B2F, F, 0)).mul(s0);
                FloatVector w1 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b1 + o + j, LE).convertShape(B2F, F, 0)).mul(s1);
                FloatVector w2 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b2 + o + j, LE).convertShape(B2F, F, 0)).mul(s2);
                FloatVector w3 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b3 + o + j, LE).convertShape(B2F, F, 0)).mul(s3);
                FloatVector u = FloatVector.fromArray(F, x, x0 + c + j);
                a0 = w0.fma(u, a0);
                a1 = w1.fma(u, a1);
                a2 = w2.fma(u, a2);
                a3 = w3.fma(u, a3);
                u = FloatVector.fromArray(F, x, x1 + c + j);
                c0 = w0.fma(u, c0);
                c1 = w1.fma(u, c1);
                c2 = w2.fma(u, c2);
                c3 = w3.fma(u, c3);
            }
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

    /** As {@link #chunk4x2} for four inputs. */
    @Override
    void chunk4x4(float[] x, int x0, int x1, int x2, int x3, int ra, int rb, int rc, int rd, int k0, int body,
            float[] acc) {
        long b0 = (long) ra * groups * GROUP, b1 = (long) rb * groups * GROUP, b2 = (long) rc * groups * GROUP, b3 = (long) rd * groups * GROUP;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        FloatVector e0 = a0, e1 = a0, e2 = a0, e3 = a0, g0 = a0, g1 = a0, g2 = a0, g3 = a0;
        for (int c = k0; c < body; c += GROUP) {
            int g = c / GROUP;
            long o = (long) g * GROUP;
            FloatVector s0 = FloatVector.broadcast(F, scale(ra, g)), s1 = FloatVector.broadcast(F, scale(rb, g));
            FloatVector s2 = FloatVector.broadcast(F, scale(rc, g)), s3 = FloatVector.broadcast(F, scale(rd, g));
            for (int j = 0; j < GROUP; j += L) {
                FloatVector w0 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b0 + o + j, LE).convertShape(B2F, F, 0)).mul(s0);
                FloatVector w1 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b1 + o + j, LE).convertShape(B2F, F, 0)).mul(s1);
                FloatVector w2 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b2 + o + j, LE).convertShape(B2F, F, 0)).mul(s2);
                FloatVector w3 = ((FloatVector) ByteVector.fromMemorySegment(B, data, b3 + o + j, LE).convertShape(B2F, F, 0)).mul(s3);
                FloatVector u = FloatVector.fromArray(F, x, x0 + c + j);
                a0 = w0.fma(u, a0);
                a1 = w1.fma(u, a1);
                a2 = w2.fma(u, a2);
                a3 = w3.fma(u, a3);
                u = FloatVector.fromArray(F, x, x1 + c + j);
                c0 = w0.fma(u, c0);
                c1 = w1.fma(u, c1);
                c2 = w2.fma(u, c2);
                c3 = w3.fma(u, c3);
                u = FloatVector.fromArray(F, x, x2 + c + j);
                e0 = w0.fma(u, e0);
                e1 = w1.fma(u, e1);
                e2 = w2.fma(u, e2);
                e3 = w3.fma(u, e3);
                u = FloatVector.fromArray(F, x, x3 + c + j);
                g0 = w0.fma(u, g0);
                g1 = w1.fma(u, g1);
                g2 = w2.fma(u, g2);
                g3 = w3.fma(u, g3);
            }
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
    void decodeGroup(int r, int g, float[] dst, int off) {
        long o = (long) r * groups * GROUP + (long) g * GROUP;
        FloatVector s = FloatVector.broadcast(F, scale(r, g));
        for (int j = 0; j < GROUP; j += L) {
            ((FloatVector) ByteVector.fromMemorySegment(B, data, o + j, LE).convertShape(B2F, F, 0)).mul(s).intoArray(dst, off + j);
        }
    }

    /** Quantises src row by row: scale = max|w| / 127, code = round(w / scale). Error <= scale / 2. */
    static Q8Matrix quantize(Matrix src, Arena arena) {
        int rows = src.rows(), cols = src.cols(), groups = Math.ceilDiv(cols, GROUP);
        MemorySegment codes = arena.allocate((long) rows * groups * GROUP, 64);
        MemorySegment scales = arena.allocate((long) rows * groups * 4, 64);
        float[] row = new float[groups * GROUP];
        for (int r = 0; r < rows; r++) {
            src.row(r, row, 0);
            for (int g = 0; g < groups; g++) {
                float amax = 0f;
                for (int j = g * GROUP; j < (g + 1) * GROUP; j++) {
                    amax = Math.max(amax, Math.abs(row[j]));
                }
                if (!Float.isFinite(amax)) {
                    throw new IllegalArgumentException("q8: row " + r + " has a non-finite weight in columns ["
                            + g * GROUP + ", " + Math.min(cols, (g + 1) * GROUP) + ")");
                }
                float scale = amax / 127f;
                float inv = scale == 0f ? 0f : 1f / scale;
                long o = (long) r * groups * GROUP + (long) g * GROUP;
                for (int j = 0; j < GROUP; j++) {
                    int q = (int) Math.rint(row[g * GROUP + j] * inv);
                    codes.set(ValueLayout.JAVA_BYTE, o + j, (byte) Math.max(-127, Math.min(127, q)));
                }
                scales.set(F32, 4L * ((long) r * groups + g), scale);
            }
            java.util.Arrays.fill(row, 0f);
        }
        return new Q8Matrix(codes, scales, rows, cols);
    }
}
