package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * float8_e4m3fn codes with one float32 scale per [blockRows x blockCols] block (DeepSeek's
 * weight_scale_inv). Each weight is widened in registers to e4m3(code) * scale (rounded once, as the
 * reference does) and multiplied in fp32; see {@link Simd#fp8}.
 */
final class Fp8BlockMatrix extends DenseMatrix {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final float[] E4M3 = Fp8E4M3.table();

    private final MemorySegment scales;
    private final int blockRows;
    private final int blockCols;
    private final int scaleCols;
    private final byte[] nanState;

    Fp8BlockMatrix(MemorySegment data, MemorySegment scales, int rows, int cols, int blockRows, int blockCols) {
        super(data, rows, cols, 1);
        if (blockRows <= 0 || blockCols <= 0) {
            throw new IllegalArgumentException("fp8 block shape must be positive, got [" + blockRows + ", "
                    + blockCols + "]");
        }
        this.scales = scales;
        this.parallel &= Parallel.accessibleByWorkers(scales);
        this.blockRows = blockRows;
        this.blockCols = blockCols;
        this.scaleCols = Math.ceilDiv(cols, blockCols);
        this.nanState = new byte[Math.ceilDiv(rows, blockRows)];
        long needScales = (long) Math.ceilDiv(rows, blockRows) * scaleCols * 4;
        if (scales.byteSize() < needScales) {
            throw new IllegalArgumentException("fp8 scales for [" + rows + ", " + cols + "] need " + needScales
                    + " bytes, have " + scales.byteSize());
        }
    }

    private float blockScale(int r, int cb) {
        return scales.get(F32, 4L * ((long) (r / blockRows) * scaleCols + cb));
    }

    /**
     * Per row block: whether its codes contain NaN codes (0 not yet scanned, 1 clean, 2 has NaN).
     * Scanned on first use (one extra pass over that block); racy writes are benign (idempotent).
     */
    private boolean clean(int rb) {
        byte state = nanState[rb];
        if (state == 0) {
            long r0 = (long) rb * blockRows;
            long n = Math.min(rows, r0 + blockRows) - r0;
            state = Simd.anyFp8NaN(data, r0 * cols, n * cols) ? (byte) 2 : (byte) 1;
            nanState[rb] = state;
        }
        return state == 1;
    }

    /**
     * Batch-1 product. For a row block without NaN codes the block scales (times 2^120) are folded
     * into a scaled copy of x, xs[c] = x[c] * scale[rb][c / blockCols] * 2^120, built once per row
     * block; each row is then a plain dot product of raw widened codes with xs (load, widen, shift,
     * mask, FMA per vector). The product is w * x rounded once as in the reference, only the
     * rounding of the scale multiply moves from the weight to x. Blocks whose scaled x overflows and
     * rows with NaN codes take the exact per-weight path.
     */
    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        float[] xs = scaledX(cols);
        int rb = -1;
        boolean fast = false;
        for (int r = r0; r < r1; r++) {
            if (r / blockRows != rb) {
                rb = r / blockRows;
                fast = clean(rb) && scaleX(rb, x, xOff, xs);
            }
            out[oOff + r] = fast ? dotScaled(r, rb, x, xOff, xs) : dotExact(r, x, xOff);
        }
    }

    private static final ThreadLocal<float[]> XS = ThreadLocal.withInitial(() -> new float[0]);

    private static float[] scaledX(int cols) {
        float[] xs = XS.get();
        if (xs.length < cols) {
            xs = new float[cols];
            XS.set(xs);
        }
        return xs;
    }

    /** Fills xs for row block rb; false when some scaled value is not finite (use the exact path). */
    private boolean scaleX(int rb, float[] x, int xOff, float[] xs) {
        FloatVector max = FloatVector.zero(F);
        float maxTail = 0f;
        for (int cb = 0, c0 = 0; c0 < cols; cb++, c0 += blockCols) {
            int c1 = Math.min(cols, c0 + blockCols);
            float factor = blockScale(rb * blockRows, cb) * 0x1p120f;
            int c = c0;
            for (; c + L <= c1; c += L) {
                FloatVector v = FloatVector.fromArray(F, x, xOff + c).mul(factor);
                v.intoArray(xs, c);
                max = max.max(v.abs());
            }
            for (; c < c1; c++) {
                xs[c] = x[xOff + c] * factor;
                maxTail = Math.max(maxTail, Math.abs(xs[c]));
            }
        }
        return Float.isFinite(Math.max(max.reduceLanes(VectorOperators.MAX), maxTail));
    }

    private float dotScaled(int r, int rb, float[] x, int xOff, float[] xs) {
        long base = (long) r * cols;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int body4 = cols - cols % (4 * L);
        int body = cols - cols % L;
        int c = 0;
        for (; c < body4; c += 4 * L) {
            a0 = Simd.fp8Raw(data, base + c).fma(FloatVector.fromArray(F, xs, c), a0);
            a1 = Simd.fp8Raw(data, base + c + L).fma(FloatVector.fromArray(F, xs, c + L), a1);
            a2 = Simd.fp8Raw(data, base + c + 2 * L).fma(FloatVector.fromArray(F, xs, c + 2 * L), a2);
            a3 = Simd.fp8Raw(data, base + c + 3 * L).fma(FloatVector.fromArray(F, xs, c + 3 * L), a3);
        }
        for (; c < body; c += L) {
            a0 = Simd.fp8Raw(data, base + c).fma(FloatVector.fromArray(F, xs, c), a0);
        }
        float sum = Simd.sum(a0, a1, a2, a3);
        for (; c < cols; c++) {
            sum += E4M3[data.get(ValueLayout.JAVA_BYTE, base + c) & 0xff] * blockScale(r, c / blockCols) * x[xOff + c];
        }
        return sum;
    }

    /** Per-weight widening w = e4m3 * scale (NaN codes honoured), scalar where the scale is out of range. */
    private float dotExact(int r, float[] x, int xOff) {
        long base = (long) r * cols;
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        float tail = 0f;
        for (int cb = 0, c0 = 0; c0 < cols; cb++, c0 += blockCols) {
            int c1 = Math.min(cols, c0 + blockCols);
            float scale = blockScale(r, cb);
            float factor = scale * 0x1p120f;
            int c = c0;
            if (Float.isFinite(factor)) {
                for (; c + 2 * L <= c1; c += 2 * L) {
                    a0 = Simd.fp8WithNaN(data, base + c, factor).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                    a1 = Simd.fp8WithNaN(data, base + c + L, factor).fma(FloatVector.fromArray(F, x, xOff + c + L), a1);
                }
                for (; c + L <= c1; c += L) {
                    a0 = Simd.fp8WithNaN(data, base + c, factor).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                }
            }
            for (; c < c1; c++) {
                tail += E4M3[data.get(ValueLayout.JAVA_BYTE, base + c) & 0xff] * scale * x[xOff + c];
            }
        }
        return a0.add(a1).reduceLanes(VectorOperators.ADD) + tail;
    }

    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        long base = (long) r * cols;
        boolean clean = clean(r / blockRows);
        int c = c0;
        while (c < c1) {
            int cb = c / blockCols;
            int end = Math.min(c1, (cb + 1) * blockCols);
            float scale = blockScale(r, cb);
            float factor = scale * 0x1p120f;
            if (Float.isFinite(factor)) {
                for (; c + L <= end; c += L) {
                    FloatVector w = clean ? Simd.fp8Raw(data, base + c).mul(factor)
                            : Simd.fp8WithNaN(data, base + c, factor);
                    w.intoArray(dst, off + c - c0);
                }
            }
            for (; c < end; c++) {
                dst[off + c - c0] = E4M3[data.get(ValueLayout.JAVA_BYTE, base + c) & 0xff] * scale;
            }
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols + (long) Math.ceilDiv(rows, blockRows) * scaleCols * 4;
    }
}
