package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

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

    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        int full = cols / GROUP;
        for (int r = r0; r < r1; r++) {
            long base = (long) r * groups * GROUP;
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

    /** Lane-wise partial sums of code * x over one group (unscaled). */
    private FloatVector group(long base, int g, float[] x, int xOff) {
        long o = base + (long) g * GROUP;
        int xo = xOff + g * GROUP;
        FloatVector t = Simd.i8(data, o).mul(FloatVector.fromArray(F, x, xo));
        for (int j = L; j < GROUP; j += L) {
            t = Simd.i8(data, o + j).fma(FloatVector.fromArray(F, x, xo + j), t);
        }
        return t;
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
