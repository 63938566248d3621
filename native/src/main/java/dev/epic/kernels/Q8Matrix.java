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
