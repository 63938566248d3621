package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** float8_e4m3fn codes with one float32 scale per [blockRows x blockCols] block (DeepSeek's weight_scale_inv). */
final class Fp8BlockMatrix extends DenseMatrix {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final float[] E4M3 = Fp8E4M3.table();

    private final MemorySegment scales;
    private final int blockRows;
    private final int blockCols;
    private final int scaleCols;

    Fp8BlockMatrix(MemorySegment data, MemorySegment scales, int rows, int cols, int blockRows, int blockCols) {
        super(data, rows, cols, 1);
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

    private float scale(int r, int c) {
        return scales.get(F32, 4L * ((long) (r / blockRows) * scaleCols + c / blockCols));
    }

    @Override
    float dot(int r, float[] x, int xOff) {
        long base = (long) r * cols;
        float sum = 0f;
        for (int c = 0; c < cols; c++) {
            // The reference widens each weight to fp32 first (code value times block scale), then multiplies.
            float w = E4M3[data.get(ValueLayout.JAVA_BYTE, base + c) & 0xff] * scale(r, c);
            sum += w * x[xOff + c];
        }
        return sum;
    }

    @Override
    public void row(int r, float[] dst, int off) {
        long base = (long) r * cols;
        for (int c = 0; c < cols; c++) {
            dst[off + c] = E4M3[data.get(ValueLayout.JAVA_BYTE, base + c) & 0xff] * scale(r, c);
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols + (long) Math.ceilDiv(rows, blockRows) * scaleCols * 4;
    }
}
