package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;

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

    Fp8BlockMatrix(MemorySegment data, MemorySegment scales, int rows, int cols, int blockRows, int blockCols) {
        super(data, rows, cols, 1);
        if (blockRows <= 0 || blockCols <= 0) {
            throw new IllegalArgumentException("fp8 block shape must be positive, got [" + blockRows + ", "
                    + blockCols + "]");
        }
        this.scales = scales;
        this.blockRows = blockRows;
        this.blockCols = blockCols;
        this.scaleCols = Math.ceilDiv(cols, blockCols);
        long needScales = (long) Math.ceilDiv(rows, blockRows) * scaleCols * 4;
        if (scales.byteSize() < needScales) {
            throw new IllegalArgumentException("fp8 scales for [" + rows + ", " + cols + "] need " + needScales
                    + " bytes, have " + scales.byteSize());
        }
    }

    private float blockScale(int r, int cb) {
        return scales.get(F32, 4L * ((long) (r / blockRows) * scaleCols + cb));
    }

    @Override
    void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        for (int r = r0; r < r1; r++) {
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
                        a0 = Simd.fp8(data, base + c, factor).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                        a1 = Simd.fp8(data, base + c + L, factor).fma(FloatVector.fromArray(F, x, xOff + c + L), a1);
                    }
                    for (; c + L <= c1; c += L) {
                        a0 = Simd.fp8(data, base + c, factor).fma(FloatVector.fromArray(F, x, xOff + c), a0);
                    }
                }
                for (; c < c1; c++) {
                    tail += E4M3[data.get(ValueLayout.JAVA_BYTE, base + c) & 0xff] * scale * x[xOff + c];
                }
            }
            out[oOff + r] = a0.add(a1).reduceLanes(jdk.incubator.vector.VectorOperators.ADD) + tail;
        }
    }

    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        long base = (long) r * cols;
        int c = c0;
        while (c < c1) {
            int cb = c / blockCols;
            int end = Math.min(c1, (cb + 1) * blockCols);
            float scale = blockScale(r, cb);
            float factor = scale * 0x1p120f;
            if (Float.isFinite(factor)) {
                for (; c + L <= end; c += L) {
                    Simd.fp8(data, base + c, factor).intoArray(dst, off + c - c0);
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
