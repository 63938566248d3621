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

    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        int full = cols / GROUP;
        for (int r = r0; r < r1; r++) {
            long base = (long) r * groups * HALF;
            long sBase = 4L * r * groups;
            FloatVector a0 = FloatVector.zero(F), a1 = a0;
            int g = 0;
            for (; g + 2 <= full; g += 2) {
                a0 = group(base, g, x, xOff).fma(FloatVector.broadcast(F, scales.get(F32, sBase + 4L * g)), a0);
                a1 = group(base, g + 1, x, xOff)
                        .fma(FloatVector.broadcast(F, scales.get(F32, sBase + 4L * (g + 1))), a1);
            }
            for (; g < full; g++) {
                a0 = group(base, g, x, xOff).fma(FloatVector.broadcast(F, scales.get(F32, sBase + 4L * g)), a0);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (int c = full * GROUP; c < cols; c++) {
                sum += weight(r, c) * x[xOff + c];
            }
            out[oOff + r] = sum;
        }
    }

    /** Lane-wise partial sums of (code - 8) * x over one group (unscaled). */
    private FloatVector group(long base, int g, float[] x, int xOff) {
        long o = base + (long) g * HALF;
        int xo = xOff + g * GROUP;
        FloatVector t = FloatVector.zero(F);
        for (int j = 0; j < HALF; j += L) {
            IntVector b = (IntVector) ByteVector.fromMemorySegment(Simd.B, data, o + j, Simd.LE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
            FloatVector lo = (FloatVector) b.and(0xf).sub(8).convert(VectorOperators.I2F, 0);
            FloatVector hi = (FloatVector) b.lanewise(VectorOperators.LSHR, 4).sub(8).convert(VectorOperators.I2F, 0);
            t = lo.fma(FloatVector.fromArray(F, x, xo + j), t);
            t = hi.fma(FloatVector.fromArray(F, x, xo + HALF + j), t);
        }
        return t;
    }

    @Override
    void decodeGroup(int r, int g, float[] dst, int off) {
        long o = (long) r * groups * HALF + (long) g * HALF;
        FloatVector s = FloatVector.broadcast(F, scale(r, g));
        for (int j = 0; j < HALF; j += L) {
            IntVector b = (IntVector) ByteVector.fromMemorySegment(Simd.B, data, o + j, Simd.LE)
                    .convertShape(VectorOperators.B2I, I, 0);
            ((FloatVector) b.and(0xf).sub(8).convert(VectorOperators.I2F, 0)).mul(s).intoArray(dst, off + j);
            ((FloatVector) b.lanewise(VectorOperators.LSHR, 4).and(0xf).sub(8).convert(VectorOperators.I2F, 0))
                    .mul(s).intoArray(dst, off + HALF + j);
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
