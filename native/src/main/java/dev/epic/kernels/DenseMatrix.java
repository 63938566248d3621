package dev.epic.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Shared shape checks and the matmul driver. Storage classes supply a fused GEMV over a row range
 * (weights widened in registers, never copied) and a row decoder; batches above one go through
 * {@link Gemm}, which decodes each weight tile once into a small cache-resident buffer and applies it
 * to every input row.
 */
abstract class DenseMatrix implements Matrix {
    final MemorySegment data;
    final int rows;
    final int cols;
    /** False when some storage segment is confined to one thread: matmul then runs on the caller. */
    boolean parallel;

    DenseMatrix(MemorySegment data, int rows, int cols, long bytesPerElement) {
        this(data, rows, cols);
        long need = (long) rows * cols * bytesPerElement;
        if (data.byteSize() < need) {
            throw new IllegalArgumentException("matrix [" + rows + ", " + cols + "] needs " + need
                    + " bytes, storage has " + data.byteSize());
        }
    }

    /** For storage whose size the subclass checks itself. */
    DenseMatrix(MemorySegment data, int rows, int cols) {
        if (rows <= 0 || cols <= 0) {
            throw new IllegalArgumentException("matrix shape must be positive, got [" + rows + ", " + cols + "]");
        }
        this.data = data;
        this.rows = rows;
        this.cols = cols;
        this.parallel = Parallel.accessibleByWorkers(data);
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    /** out[oOff + r] = sum_c W[r,c] * x[xOff + c] for r in [r0, r1), fp32 accumulation. */
    abstract void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1);

    /** dst[off + (c - c0)] = W[r,c] widened to fp32, for c in [c0, c1). */
    abstract void decode(int r, int c0, int c1, float[] dst, int off);

    @Override
    public void row(int r, float[] dst, int off) {
        if (r < 0 || r >= rows) {
            throw new IndexOutOfBoundsException("row " + r + " outside [0, " + rows + ")");
        }
        if (off < 0 || dst.length - off < cols) {
            throw new IllegalArgumentException("row needs " + cols + " floats at offset " + off + ", dst has "
                    + dst.length);
        }
        decode(r, 0, cols, dst, off);
    }

    @Override
    public void matmul(float[] x, float[] out, int batch) {
        if (batch < 1 || x.length < (long) batch * cols || out.length < (long) batch * rows) {
            throw new IllegalArgumentException("matmul [" + rows + ", " + cols + "] with batch " + batch
                    + " needs x >= " + (long) batch * cols + " and out >= " + (long) batch * rows + ", got x "
                    + x.length + ", out " + out.length);
        }
        if (!parallel) {
            if (batch == 1) {
                gemv(x, 0, out, 0, 0, rows);
            } else {
                Gemm.rows(this, x, out, batch, 0, rows);
            }
        } else if (batch == 1) {
            Parallel.forRange(rows, 1, (long) rows * cols, (r0, r1) -> gemv(x, 0, out, 0, r0, r1));
        } else {
            Gemm.multiply(this, x, out, batch);
        }
    }
}
