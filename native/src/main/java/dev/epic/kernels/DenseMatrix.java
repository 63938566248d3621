package dev.epic.kernels;

import static dev.epic.kernels.Simd.L;

import java.lang.foreign.MemorySegment;

/**
 * Shared shape checks and the matmul driver. Storage classes supply a fused GEMV over a row range
 * (weights widened in registers, never copied) and a row decoder; batches above one go through
 * {@link Gemm}, which decodes each weight tile once into a small cache-resident buffer and applies it
 * to every input row. Both follow {@link Contract}, so a row's result is the same bits either way.
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

    /**
     * out[oOff + r] = sum_c W[r,c] * x[xOff + c] for r in [r0, r1), in the {@link Contract} order:
     * four rows at a time, one accumulator each (the ILP without changing any row's order). The vector
     * part of a chunk is the format's {@link #chunk4}; lane sums, scalar tail and chunk sums are here.
     */
    final void gemv(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        gemv(x, xOff, out, oOff, 1, r0, r1);
    }

    /**
     * {@link #gemv} for each of {@code batch} input rows x[xOff + b * cols ..] into out[oOff + b * rows ..],
     * the inputs innermost: a step's four weight rows are read from memory once and stay in L1 for the
     * other inputs. For small batches (an expert's few tokens), where the tiled GEMM's decode pass costs
     * more than it saves.
     */
    final void gemv(float[] x, int xOff, float[] out, int oOff, int batch, int r0, int r1) {
        int per = batchRows();
        float[] acc = new float[4 * L * per];
        float[] s = new float[4 * per];
        // The four rows of a step come from the four quarters of the range, so each is one long
        // sequential stream: the hardware prefetchers follow four such streams far better than four
        // adjacent short rows (measured on lm_head: 50 GB/s against 22 GB/s on 2 cores).
        int q = Math.ceilDiv(r1 - r0, 4);
        for (int r = r0; r < r0 + q; r++) {
            // A quarter past the range end repeats the last row: results are per row, so a duplicate is harmless.
            int ra = r, rb = Math.min(r + q, r1 - 1), rc = Math.min(r + 2 * q, r1 - 1), rd = Math.min(r + 3 * q, r1 - 1);
            if (!fused(ra, rb, rc, rd)) {
                for (int b = 0; b < batch; b++) {
                    int xb = xOff + b * cols, ob = oOff + b * rows;
                    gemvDecoded(x, xb, out, ob, ra, ra + 1);
                    gemvDecoded(x, xb, out, ob, rb, rb + 1);
                    gemvDecoded(x, xb, out, ob, rc, rc + 1);
                    gemvDecoded(x, xb, out, ob, rd, rd + 1);
                }
                continue;
            }
            for (int b = 0; b < batch; b += per) {
                int nb = Math.min(per, batch - b);
                for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
                    int k1 = Math.min(cols, k0 + Contract.CHUNK);
                    int body = k1 - (k1 - k0) % L;
                    chunk4Batch(x, xOff + b * cols, nb, ra, rb, rc, rd, k0, body, acc);
                    for (int j = 0; j < nb; j++) {
                        int xb = xOff + (b + j) * cols, a = 4 * L * j;
                        Simd.sumLanes4(acc, a);
                        float p0 = tail(ra, body, k1, acc[a], x, xb);
                        float p1 = tail(rb, body, k1, acc[a + 1], x, xb);
                        float p2 = tail(rc, body, k1, acc[a + 2], x, xb);
                        float p3 = tail(rd, body, k1, acc[a + 3], x, xb);
                        if (k0 == 0) {
                            s[4 * j] = p0;
                            s[4 * j + 1] = p1;
                            s[4 * j + 2] = p2;
                            s[4 * j + 3] = p3;
                        } else {
                            s[4 * j] += p0;
                            s[4 * j + 1] += p1;
                            s[4 * j + 2] += p2;
                            s[4 * j + 3] += p3;
                        }
                    }
                }
                for (int j = 0; j < nb; j++) {
                    int ob = oOff + (b + j) * rows;
                    out[ob + rd] = s[4 * j + 3];
                    out[ob + rc] = s[4 * j + 2];
                    out[ob + rb] = s[4 * j + 1];
                    out[ob + ra] = s[4 * j];
                }
            }
        }
    }

    /** p + w[r, c] * x[c] for c in [c0, c1), in order (the contract's scalar step). */
    private float tail(int r, int c0, int c1, float p, float[] x, int xOff) {
        for (int c = c0; c < c1; c++) {
            p += weight(r, c) * x[xOff + c];
        }
        return p;
    }

    /**
     * Contract step 2 for rows ra..rd (may repeat) over columns [k0, body), body - k0 a multiple of L:
     * the four lane accumulators go to acc[0, L), [L, 2L), [2L, 3L), [3L, 4L). Only vector code, kept
     * small so that C2 inlines all of it (a vector left in a call is boxed, and slow).
     */
    abstract void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc);

    /** Input rows one {@link #chunk4Batch} call takes: 1 unless the format widens once for several. */
    int batchRows() {
        return 1;
    }

    /**
     * {@link #chunk4} for nb (at most {@link #batchRows}) consecutive input rows x[xOff + j * cols ..]
     * at once, input j's four lane accumulators to acc[4L j ..]: the same bits as nb chunk4 calls, with
     * each weight widened once for all of them.
     */
    void chunk4Batch(float[] x, int xOff, int nb, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        if (nb == 1) {
            chunk4(x, xOff, ra, rb, rc, rd, k0, body, acc);
        } else if (nb == 2) {
            chunk4x2(x, xOff, xOff + cols, ra, rb, rc, rd, k0, body, acc);
        } else { // three run as four, the last repeated
            chunk4x4(x, xOff, xOff + cols, xOff + 2 * cols, xOff + (nb - 1) * cols, ra, rb, rc, rd, k0, body, acc);
        }
    }

    /**
     * {@link #chunk4} for the inputs at x0 and x1 at once, input j's accumulators to acc[4L j ..]:
     * for formats whose {@link #batchRows} is 4, which widen each weight vector once for all inputs.
     */
    void chunk4x2(float[] x, int x0, int x1, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        throw new UnsupportedOperationException("batchRows() is 1");
    }

    /** As {@link #chunk4x2} for four inputs. */
    void chunk4x4(float[] x, int x0, int x1, int x2, int x3, int ra, int rb, int rc, int rd, int k0, int body,
            float[] acc) {
        throw new UnsupportedOperationException("batchRows() is 1");
    }

    /** Whether {@link #chunk4} handles these rows; if not, they go through {@link #gemvDecoded}. */
    boolean fused(int ra, int rb, int rc, int rd) {
        return true;
    }

    /** W[r, c] widened to fp32, the same value {@link #decode} gives. */
    abstract float weight(int r, int c);

    private static final ThreadLocal<float[]> ROW = ThreadLocal.withInitial(() -> new float[Contract.CHUNK]);

    /**
     * Batch-1 rows through {@link #decode}, chunk by chunk, in the {@link Contract} order: for storage
     * layouts the fused loops do not cover (odd block or group shapes, fp8 NaN codes, huge scales).
     */
    final void gemvDecoded(float[] x, int xOff, float[] out, int oOff, int r0, int r1) {
        float[] w = ROW.get();
        for (int r = r0; r < r1; r++) {
            float s = 0f;
            for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
                int k1 = Math.min(cols, k0 + Contract.CHUNK);
                decode(r, k0, k1, w, 0);
                float p = Contract.dot(w, 0, x, xOff + k0, k1 - k0);
                s = k0 == 0 ? p : s + p;
            }
            out[oOff + r] = s;
        }
    }

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
        int fusedBatch = smallBatch();
        if (!parallel) {
            if (batch <= fusedBatch) {
                gemv(x, 0, out, 0, batch, 0, rows);
            } else {
                Gemm.rows(this, x, out, batch, 0, rows);
            }
        } else if (batch <= fusedBatch) {
            Parallel.forRange(rows, 1, (long) rows * cols * batch, (r0, r1) -> gemv(x, 0, out, 0, batch, r0, r1));
        } else {
            Gemm.multiply(this, x, out, batch);
        }
    }

    /**
     * Largest batch that goes through the fused {@link #gemv} instead of the tiled GEMM: measured on
     * the 2-core AVX-512 box, 2816x1024 bf16: batch 2 119 against 338 us, batch 4 240 against 287 us,
     * batch 6 715 against 412 us. Formats with a costlier widening override it.
     */
    int smallBatch() {
        return 4;
    }
}
