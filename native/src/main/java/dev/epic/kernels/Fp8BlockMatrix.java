package dev.epic.kernels;

import static dev.epic.kernels.Simd.B;
import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.I;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.LE;
import static jdk.incubator.vector.VectorOperators.B2I;
import static jdk.incubator.vector.VectorOperators.LSHL;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;

/**
 * float8_e4m3fn codes with one float32 scale per [blockRows x blockCols] block (DeepSeek's
 * weight_scale_inv). Each weight is widened in registers to e4m3(code) * scale (rounded once, as the
 * reference does; see {@link #NEG0}) and multiplied with x in fp32; see {@link Simd#fp8Raw}. GEMV and
 * GEMM use the same widened weight and the {@link Contract} order.
 */
final class Fp8BlockMatrix extends DenseMatrix {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final float[] E4M3 = Fp8E4M3.table();
    /**
     * The scale is applied as fma(raw, factor, -0), which rounds exactly as raw * factor (the -0 keeps a
     * -0 product's sign): e4m3 subnormal codes widen to float subnormals, and a multiply with a subnormal
     * input takes a slow microcode path on x86 cores while an FMA does not (2.5 times faster on random codes).
     */
    private static final FloatVector NEG0 = FloatVector.broadcast(F, -0f);

    private final MemorySegment scales;
    private final int blockRows;
    private final int blockCols;
    private final int scaleCols;
    private final byte[] nanState;
    private final boolean fusable;

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
        this.fusable = fusable();
    }

    /** Its first n rows, over the same codes and scales (see {@link KernelWarmup#head}). */
    Fp8BlockMatrix head(int n) {
        return new Fp8BlockMatrix(data.asSlice(0, (long) n * cols),
                scales.asSlice(0, 4L * Math.ceilDiv(n, blockRows) * scaleCols), n, cols, blockRows, blockCols);
    }

    @Override
    public WeightLayout layout() {
        return new WeightLayout(WeightLayout.Format.FP8_BLOCK, data, scales, blockRows, blockCols);
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
     * Fused rows: clean of NaN codes, blocks of whole vectors, every scale * 2^120 finite. Others go
     * through decode (same weights, same order).
     */
    @Override
    boolean fused(int ra, int rb, int rc, int rd) {
        return fusable && clean(ra / blockRows) && clean(rb / blockRows) && clean(rc / blockRows)
                && clean(rd / blockRows);
    }

    /**
     * Each weight widened exactly as {@link #decode} does, w = (e4m3 * 2^-120) * (scale * 2^120), i.e.
     * the reference's e4m3 * scale rounded once, then FMA'd with x. The widening is written out, not
     * called (see Bf16Matrix#chunk4: a helper left out of line boxes its vectors).
     */
    @Override
    void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * cols, b1 = (long) rb * cols, b2 = (long) rc * cols, b3 = (long) rd * cols;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        // Integer divisions hoisted out of the block loop: blocks are short (8 vectors at 128 columns).
        long s0 = 4L * (ra / blockRows) * scaleCols, s1 = 4L * (rb / blockRows) * scaleCols;
        long s2 = 4L * (rc / blockRows) * scaleCols, s3 = 4L * (rd / blockRows) * scaleCols;
        for (int c = k0, cb = k0 / blockCols; c < body; cb++) {
            // blockCols is a multiple of L, so no vector straddles two blocks.
            int end = Math.min(body, (cb + 1) * blockCols);
            long so = 4L * cb;
            FloatVector f0 = FloatVector.broadcast(F, scales.get(F32, s0 + so) * 0x1p120f);
            FloatVector f1 = FloatVector.broadcast(F, scales.get(F32, s1 + so) * 0x1p120f);
            FloatVector f2 = FloatVector.broadcast(F, scales.get(F32, s2 + so) * 0x1p120f);
            FloatVector f3 = FloatVector.broadcast(F, scales.get(F32, s3 + so) * 0x1p120f);
            for (; c < end; c += L) {
                FloatVector u = FloatVector.fromArray(F, x, xOff + c);
                a0 = ((IntVector) ByteVector.fromMemorySegment(B, data, b0 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f0, NEG0).fma(u, a0);
                a1 = ((IntVector) ByteVector.fromMemorySegment(B, data, b1 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f1, NEG0).fma(u, a1);
                a2 = ((IntVector) ByteVector.fromMemorySegment(B, data, b2 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f2, NEG0).fma(u, a2);
                a3 = ((IntVector) ByteVector.fromMemorySegment(B, data, b3 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f3, NEG0).fma(u, a3);
            }
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
    }

    /**
     * Up to four inputs per pass: fp8 widening (convert, shift, mask, scale) is most of the vector work,
     * so each weight vector is widened once for all of them. Three run as four with the last repeated.
     */
    @Override
    int batchRows() {
        return 4;
    }

    /** {@link #chunk4} for inputs at x0 and x1: each weight widened once, FMA'd in the same order as two calls. */
    @Override
    void chunk4x2(float[] x, int x0, int x1, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * cols, b1 = (long) rb * cols, b2 = (long) rc * cols, b3 = (long) rd * cols;
        long s0 = 4L * (ra / blockRows) * scaleCols, s1 = 4L * (rb / blockRows) * scaleCols;
        long s2 = 4L * (rc / blockRows) * scaleCols, s3 = 4L * (rd / blockRows) * scaleCols;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        for (int c = k0, cb = k0 / blockCols; c < body; cb++) {
            int end = Math.min(body, (cb + 1) * blockCols);
            long so = 4L * cb;
            FloatVector f0 = FloatVector.broadcast(F, scales.get(F32, s0 + so) * 0x1p120f);
            FloatVector f1 = FloatVector.broadcast(F, scales.get(F32, s1 + so) * 0x1p120f);
            FloatVector f2 = FloatVector.broadcast(F, scales.get(F32, s2 + so) * 0x1p120f);
            FloatVector f3 = FloatVector.broadcast(F, scales.get(F32, s3 + so) * 0x1p120f);
            for (; c < end; c += L) {
                FloatVector w0 = ((IntVector) ByteVector.fromMemorySegment(B, data, b0 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f0, NEG0);
                FloatVector w1 = ((IntVector) ByteVector.fromMemorySegment(B, data, b1 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f1, NEG0);
                FloatVector w2 = ((IntVector) ByteVector.fromMemorySegment(B, data, b2 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f2, NEG0);
                FloatVector w3 = ((IntVector) ByteVector.fromMemorySegment(B, data, b3 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f3, NEG0);
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
        long b0 = (long) ra * cols, b1 = (long) rb * cols, b2 = (long) rc * cols, b3 = (long) rd * cols;
        long s0 = 4L * (ra / blockRows) * scaleCols, s1 = 4L * (rb / blockRows) * scaleCols;
        long s2 = 4L * (rc / blockRows) * scaleCols, s3 = 4L * (rd / blockRows) * scaleCols;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, c0 = a0, c1 = a0, c2 = a0, c3 = a0;
        FloatVector e0 = a0, e1 = a0, e2 = a0, e3 = a0, g0 = a0, g1 = a0, g2 = a0, g3 = a0;
        for (int c = k0, cb = k0 / blockCols; c < body; cb++) {
            int end = Math.min(body, (cb + 1) * blockCols);
            long so = 4L * cb;
            FloatVector f0 = FloatVector.broadcast(F, scales.get(F32, s0 + so) * 0x1p120f);
            FloatVector f1 = FloatVector.broadcast(F, scales.get(F32, s1 + so) * 0x1p120f);
            FloatVector f2 = FloatVector.broadcast(F, scales.get(F32, s2 + so) * 0x1p120f);
            FloatVector f3 = FloatVector.broadcast(F, scales.get(F32, s3 + so) * 0x1p120f);
            for (; c < end; c += L) {
                FloatVector w0 = ((IntVector) ByteVector.fromMemorySegment(B, data, b0 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f0, NEG0);
                FloatVector w1 = ((IntVector) ByteVector.fromMemorySegment(B, data, b1 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f1, NEG0);
                FloatVector w2 = ((IntVector) ByteVector.fromMemorySegment(B, data, b2 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f2, NEG0);
                FloatVector w3 = ((IntVector) ByteVector.fromMemorySegment(B, data, b3 + c, LE).convertShape(B2I, I, 0))
                        .lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(f3, NEG0);
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
        return E4M3[data.get(ValueLayout.JAVA_BYTE, (long) r * cols + c) & 0xff] * blockScale(r, c / blockCols);
    }

    /** Whether every block is whole vectors and every scale * 2^120 is finite (the fused GEMV's premise). */
    private boolean fusable() {
        if (blockCols % L != 0) {
            return false;
        }
        long n = (long) Math.ceilDiv(rows, blockRows) * scaleCols;
        for (long i = 0; i < n; i++) {
            if (!Float.isFinite(scales.get(F32, 4 * i) * 0x1p120f)) {
                return false;
            }
        }
        return true;
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
                    FloatVector w = clean ? ((IntVector) ByteVector.fromMemorySegment(B, data, base + c, LE)
                            .convertShape(B2I, I, 0)).lanewise(LSHL, 20).and(0x87F00000).reinterpretAsFloats().fma(factor, -0f)
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

    /**
     * With the scale applied by FMA (see {@link #NEG0}) the fused path beats the tiled GEMM up to batch 8
     * (4096x1024, 2 cores, best of thousands: batch 4 232 against 434 us, batch 8 450 against 524 us,
     * batch 12 681 against 696 us).
     */
    @Override
    int smallBatch() {
        return 8;
    }
}
