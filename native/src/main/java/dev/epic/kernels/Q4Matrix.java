package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.I;
import static dev.epic.kernels.Simd.L;

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

    Q4Matrix(MemorySegment codes, MemorySegment scales, int rows, int cols) {
        super(codes, scales, rows, cols, HALF);
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
            long b0 = (long) ra * groups * HALF, b1 = (long) rb * groups * HALF;
            long b2 = (long) rc * groups * HALF, b3 = (long) rd * groups * HALF;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            // CHUNK is a multiple of GROUP and GROUP of L: chunks are whole groups, with no scalar tail.
            for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
                int k1 = Math.min(cols, k0 + Contract.CHUNK);
                FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                for (int c = k0; c < k1; c += GROUP) {
                    int g = c / GROUP;
                    long o = (long) g * HALF;
                    FloatVector s0v = FloatVector.broadcast(F, scale(ra, g)), s1v = FloatVector.broadcast(F, scale(rb, g));
                    FloatVector s2v = FloatVector.broadcast(F, scale(rc, g)), s3v = FloatVector.broadcast(F, scale(rd, g));
                    // Columns in ascending order: all low nibbles (c .. c+15), then the high ones.
                    for (int j = 0; j < HALF; j += L) {
                        FloatVector u = FloatVector.fromArray(F, x, xOff + c + j);
                        a0 = lo(b0 + o + j).mul(s0v).fma(u, a0);
                        a1 = lo(b1 + o + j).mul(s1v).fma(u, a1);
                        a2 = lo(b2 + o + j).mul(s2v).fma(u, a2);
                        a3 = lo(b3 + o + j).mul(s3v).fma(u, a3);
                    }
                    for (int j = 0; j < HALF; j += L) {
                        FloatVector u = FloatVector.fromArray(F, x, xOff + c + HALF + j);
                        a0 = hi(b0 + o + j).mul(s0v).fma(u, a0);
                        a1 = hi(b1 + o + j).mul(s1v).fma(u, a1);
                        a2 = hi(b2 + o + j).mul(s2v).fma(u, a2);
                        a3 = hi(b3 + o + j).mul(s3v).fma(u, a3);
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

    /** The L low-nibble codes minus 8 (columns j.. of the group) from the code bytes at off. */
    private FloatVector lo(long off) {
        IntVector b = (IntVector) ByteVector.fromMemorySegment(Simd.B, data, off, Simd.LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
        return (FloatVector) b.and(0xf).sub(8).convert(VectorOperators.I2F, 0);
    }

    /** The L high-nibble codes minus 8 (columns j+16.. of the group) from the code bytes at off. */
    private FloatVector hi(long off) {
        IntVector b = (IntVector) ByteVector.fromMemorySegment(Simd.B, data, off, Simd.LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
        return (FloatVector) b.lanewise(VectorOperators.LSHR, 4).sub(8).convert(VectorOperators.I2F, 0);
    }

    @Override
    void decodeGroup(int r, int g, float[] dst, int off) {
        long o = (long) r * groups * HALF + (long) g * HALF;
        FloatVector s = FloatVector.broadcast(F, scale(r, g));
        for (int j = 0; j < HALF; j += L) {
            lo(o + j).mul(s).intoArray(dst, off + j);
            hi(o + j).mul(s).intoArray(dst, off + HALF + j);
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
