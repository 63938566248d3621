package dev.epic.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Shared shape checks and the portable scalar matmul: row-by-row dot products with fp32
 * accumulation. Storage classes supply {@link #dot} and {@link #row}.
 */
abstract class DenseMatrix implements Matrix {
    final MemorySegment data;
    final int rows;
    final int cols;

    DenseMatrix(MemorySegment data, int rows, int cols, long bytesPerElement) {
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("matrix shape must be positive, got [" + rows + ", " + cols + "]");
        }
        long need = (long) rows * cols * bytesPerElement;
        if (data.byteSize() < need) {
            throw new IllegalArgumentException("matrix [" + rows + ", " + cols + "] needs " + need
                    + " bytes, storage has " + data.byteSize());
        }
        this.data = data;
        this.rows = rows;
        this.cols = cols;
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    /** sum_c W[r,c] * x[xOff + c] in fp32. */
    abstract float dot(int r, float[] x, int xOff);

    @Override
    public void matmul(float[] x, float[] out, int batch) {
        if (x.length < (long) batch * cols || out.length < (long) batch * rows) {
            throw new IllegalArgumentException("matmul buffers too small for batch " + batch + " and [" + rows + ", "
                    + cols + "]");
        }
        for (int b = 0; b < batch; b++) {
            int xOff = b * cols;
            int oOff = b * rows;
            for (int r = 0; r < rows; r++) {
                out[oOff + r] = dot(r, x, xOff);
            }
        }
    }
}
