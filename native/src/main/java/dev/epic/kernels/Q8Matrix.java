package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;

/**
 * Q8_0-style weights: W[r,c] = code * scale[r, c/32], int8 codes in [-127, 127]. 1.125 bytes per
 * weight. Activations stay fp32: each group's code vectors are widened to fp32 in registers, dotted
 * with x, and the group sum is scaled once.
 */
final class Q8Matrix extends GroupQuantMatrix {
    Q8Matrix(MemorySegment codes, MemorySegment scales, int rows, int cols) {
        super(codes, scales, rows, cols, GROUP);
    }

    @Override
    String format() {
        return "q8";
    }

    @Override
    float weight(int r, int c) {
        return data.get(ValueLayout.JAVA_BYTE, (long) r * groups * GROUP + c) * scale(r, c / GROUP);
    }

    /**
     * Four rows at a time with one accumulator each, in the {@link Contract} order, each weight
     * widened as {@link #decodeGroup} does (code * scale rounded once, then FMA'd with x). A partial
     * last group goes through decode.
     */
    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        if (cols % GROUP != 0) {
            gemvDecoded(x, xOff, out, oOff, r0, r1);
            return;
        }
        for (int r = r0; r < r1; r += 4) {
            // Past the range end the last row repeats: results are per row, so a duplicate is harmless.
            int ra = r, rb = Math.min(r + 1, r1 - 1), rc = Math.min(r + 2, r1 - 1), rd = Math.min(r + 3, r1 - 1);
            long b0 = (long) ra * groups * GROUP, b1 = (long) rb * groups * GROUP;
            long b2 = (long) rc * groups * GROUP, b3 = (long) rd * groups * GROUP;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            // CHUNK is a multiple of GROUP and GROUP of L: chunks are whole groups, with no scalar tail.
            for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
                int k1 = Math.min(cols, k0 + Contract.CHUNK);
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int c = k0; c < k1; c += GROUP) {
                    int g = c / GROUP;
                    long o = (long) g * GROUP;
                    FloatVector s0v = FloatVector.broadcast(F, scale(ra, g)), s1v = FloatVector.broadcast(F, scale(rb, g));
                    FloatVector s2v = FloatVector.broadcast(F, scale(rc, g)), s3v = FloatVector.broadcast(F, scale(rd, g));
                    for (int j = 0; j < GROUP; j += L) {
                        FloatVector u = FloatVector.fromArray(F, x, xOff + c + j);
                        a0 = Simd.i8(data, b0 + o + j).mul(s0v).fma(u, a0);
                        a1 = Simd.i8(data, b1 + o + j).mul(s1v).fma(u, a1);
                        a2 = Simd.i8(data, b2 + o + j).mul(s2v).fma(u, a2);
                        a3 = Simd.i8(data, b3 + o + j).mul(s3v).fma(u, a3);
                    }
                }
                float p0 = Simd.sumLanes(a0), p1 = Simd.sumLanes(a1), p2 = Simd.sumLanes(a2), p3 = Simd.sumLanes(a3);
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
    void decodeGroup(int r, int g, float[] dst, int off) {
        long o = (long) r * groups * GROUP + (long) g * GROUP;
        FloatVector s = FloatVector.broadcast(F, scale(r, g));
        for (int j = 0; j < GROUP; j += L) {
            Simd.i8(data, o + j).mul(s).intoArray(dst, off + j);
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
