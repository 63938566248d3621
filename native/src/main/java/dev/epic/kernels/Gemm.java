package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;

/**
 * Batched matmul (prefill, expert batches): out[b, r] = W[r, :] . x[b, :].
 *
 * <p>Each thread takes a range of weight rows. A tile of {@link #TILE_ROWS} rows by {@link #TILE_COLS}
 * columns is widened once into a thread-local fp32 buffer (256 KiB, stays in L2), then swept against
 * every input row with a 4x4 register kernel: each weight vector load serves 4 input rows and each
 * input vector load serves 4 weight rows, so the loop is FMA bound rather than memory bound. The
 * buffer is a transient decode tile, not a copy of the matrix. Every kernel here (4x4, 4x1, single
 * dot) follows {@link Contract}: a tile's columns are one chunk, one accumulator per (row, input).
 */
final class Gemm {
    /**
     * 64 rows rather than 16: each input row's pass serves four times the weight rows (2-core AVX-512 box,
     * best of many: experts' 256x1024 and 1024x256 at batch 16 9-12% faster, lm_head at batch 32 3%).
     */
    static final int TILE_ROWS = 64;
    static final int TILE_COLS = Contract.CHUNK;
    private static final ThreadLocal<float[]> TILE = ThreadLocal.withInitial(() -> new float[TILE_ROWS * TILE_COLS]);
    /** A kernel's lane accumulators, then their sums (Simd.sumLanes4/16: the contract's tree, in registers). */
    private static final ThreadLocal<float[]> ACC = ThreadLocal.withInitial(() -> new float[16 * L]);

    private Gemm() {}

    static void multiply(DenseMatrix m, float[] x, float[] out, int batch) {
        long work = (long) m.rows * m.cols * batch;
        // Whole tiles per thread where there are enough; else 16-row pieces, so many cores still share
        // a small matrix (a thread's last tile is then shorter).
        int align = Math.ceilDiv(m.rows, TILE_ROWS) >= 2 * Parallel.threads() ? TILE_ROWS : 16;
        Parallel.forRange(m.rows, align, work, (r0, r1) -> rows(m, x, out, batch, r0, r1));
    }

    static void rows(DenseMatrix m, float[] x, float[] out, int batch, int r0, int r1) {
        float[] tile = TILE.get();
        float[] acc = ACC.get();
        int rows = m.rows;
        int cols = m.cols;
        for (int rt = r0; rt < r1; rt += TILE_ROWS) {
            int nr = Math.min(TILE_ROWS, r1 - rt);
            for (int kt = 0; kt < cols; kt += TILE_COLS) {
                int nk = Math.min(TILE_COLS, cols - kt);
                for (int i = 0; i < nr; i++) {
                    m.decode(rt + i, kt, kt + nk, tile, i * TILE_COLS);
                }
                boolean first = kt == 0;
                int b = 0;
                for (; b + 4 <= batch; b += 4) {
                    int i = 0;
                    for (; i + 4 <= nr; i += 4) {
                        kernel4x4(tile, i * TILE_COLS, x, b * cols + kt, cols, nk, out, b * rows + rt + i, rows, first, acc);
                    }
                    for (; i < nr; i++) {
                        for (int bb = b; bb < b + 4; bb++) {
                            store(out, bb * rows + rt + i, first,
                                    dot(tile, i * TILE_COLS, x, bb * cols + kt, nk));
                        }
                    }
                }
                for (; b < batch; b++) {
                    int i = 0;
                    for (; i + 4 <= nr; i += 4) {
                        kernel4x1(tile, i * TILE_COLS, x, b * cols + kt, nk, out, b * rows + rt + i, first, acc);
                    }
                    for (; i < nr; i++) {
                        store(out, b * rows + rt + i, first, dot(tile, i * TILE_COLS, x, b * cols + kt, nk));
                    }
                }
            }
        }
    }

    private static void store(float[] out, int at, boolean first, float v) {
        out[at] = first ? v : out[at] + v;
    }

    /** 4 tile rows (stride TILE_COLS from w) against 4 input rows (stride xs from x), n columns. */
    private static void kernel4x4(float[] w, int w0, float[] x, int x0, int xs, int n, float[] out, int o0,
            int os, boolean first, float[] acc) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        int w1 = w0 + TILE_COLS, w2 = w1 + TILE_COLS, w3 = w2 + TILE_COLS;
        int x1 = x0 + xs, x2 = x1 + xs, x3 = x2 + xs;
        int body = n - n % L;
        int k = 0;
        for (; k < body; k += L) {
            FloatVector v0 = FloatVector.fromArray(F, w, w0 + k);
            FloatVector v1 = FloatVector.fromArray(F, w, w1 + k);
            FloatVector v2 = FloatVector.fromArray(F, w, w2 + k);
            FloatVector v3 = FloatVector.fromArray(F, w, w3 + k);
            FloatVector u = FloatVector.fromArray(F, x, x0 + k);
            c00 = v0.fma(u, c00);
            c10 = v1.fma(u, c10);
            c20 = v2.fma(u, c20);
            c30 = v3.fma(u, c30);
            u = FloatVector.fromArray(F, x, x1 + k);
            c01 = v0.fma(u, c01);
            c11 = v1.fma(u, c11);
            c21 = v2.fma(u, c21);
            c31 = v3.fma(u, c31);
            u = FloatVector.fromArray(F, x, x2 + k);
            c02 = v0.fma(u, c02);
            c12 = v1.fma(u, c12);
            c22 = v2.fma(u, c22);
            c32 = v3.fma(u, c32);
            u = FloatVector.fromArray(F, x, x3 + k);
            c03 = v0.fma(u, c03);
            c13 = v1.fma(u, c13);
            c23 = v2.fma(u, c23);
            c33 = v3.fma(u, c33);
        }
        c00.intoArray(acc, 0 * L);
        c10.intoArray(acc, 1 * L);
        c20.intoArray(acc, 2 * L);
        c30.intoArray(acc, 3 * L);
        c01.intoArray(acc, 4 * L);
        c11.intoArray(acc, 5 * L);
        c21.intoArray(acc, 6 * L);
        c31.intoArray(acc, 7 * L);
        c02.intoArray(acc, 8 * L);
        c12.intoArray(acc, 9 * L);
        c22.intoArray(acc, 10 * L);
        c32.intoArray(acc, 11 * L);
        c03.intoArray(acc, 12 * L);
        c13.intoArray(acc, 13 * L);
        c23.intoArray(acc, 14 * L);
        c33.intoArray(acc, 15 * L);
        Simd.sumLanes16(acc, 0);
        finish(acc, 0, w, w0, x, x0, k, n, out, o0 + 0 * os + 0, first);
        finish(acc, 1, w, w1, x, x0, k, n, out, o0 + 0 * os + 1, first);
        finish(acc, 2, w, w2, x, x0, k, n, out, o0 + 0 * os + 2, first);
        finish(acc, 3, w, w3, x, x0, k, n, out, o0 + 0 * os + 3, first);
        finish(acc, 4, w, w0, x, x1, k, n, out, o0 + 1 * os + 0, first);
        finish(acc, 5, w, w1, x, x1, k, n, out, o0 + 1 * os + 1, first);
        finish(acc, 6, w, w2, x, x1, k, n, out, o0 + 1 * os + 2, first);
        finish(acc, 7, w, w3, x, x1, k, n, out, o0 + 1 * os + 3, first);
        finish(acc, 8, w, w0, x, x2, k, n, out, o0 + 2 * os + 0, first);
        finish(acc, 9, w, w1, x, x2, k, n, out, o0 + 2 * os + 1, first);
        finish(acc, 10, w, w2, x, x2, k, n, out, o0 + 2 * os + 2, first);
        finish(acc, 11, w, w3, x, x2, k, n, out, o0 + 2 * os + 3, first);
        finish(acc, 12, w, w0, x, x3, k, n, out, o0 + 3 * os + 0, first);
        finish(acc, 13, w, w1, x, x3, k, n, out, o0 + 3 * os + 1, first);
        finish(acc, 14, w, w2, x, x3, k, n, out, o0 + 3 * os + 2, first);
        finish(acc, 15, w, w3, x, x3, k, n, out, o0 + 3 * os + 3, first);
    }

    /** Takes one accumulator's lane sum (acc[j]), adds the scalar column tail, stores. */
    private static void finish(float[] acc, int j, float[] w, int wi, float[] x, int xi, int k, int n, float[] out,
            int at, boolean first) {
        float s = acc[j];
        for (; k < n; k++) {
            s += w[wi + k] * x[xi + k];
        }
        store(out, at, first, s);
    }

    /** 4 tile rows against one input row. */
    private static void kernel4x1(float[] w, int w0, float[] x, int x0, int n, float[] out, int o0, boolean first,
            float[] acc) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0, c2 = c0, c3 = c0;
        int w1 = w0 + TILE_COLS, w2 = w1 + TILE_COLS, w3 = w2 + TILE_COLS;
        int body = n - n % L;
        int k = 0;
        for (; k < body; k += L) {
            FloatVector u = FloatVector.fromArray(F, x, x0 + k);
            c0 = FloatVector.fromArray(F, w, w0 + k).fma(u, c0);
            c1 = FloatVector.fromArray(F, w, w1 + k).fma(u, c1);
            c2 = FloatVector.fromArray(F, w, w2 + k).fma(u, c2);
            c3 = FloatVector.fromArray(F, w, w3 + k).fma(u, c3);
        }
        c0.intoArray(acc, 0);
        c1.intoArray(acc, L);
        c2.intoArray(acc, 2 * L);
        c3.intoArray(acc, 3 * L);
        Simd.sumLanes4(acc, 0);
        float s0 = acc[0], s1 = acc[1], s2 = acc[2], s3 = acc[3];
        for (; k < n; k++) {
            float u = x[x0 + k];
            s0 += w[w0 + k] * u;
            s1 += w[w1 + k] * u;
            s2 += w[w2 + k] * u;
            s3 += w[w3 + k] * u;
        }
        store(out, o0, first, s0);
        store(out, o0 + 1, first, s1);
        store(out, o0 + 2, first, s2);
        store(out, o0 + 3, first, s3);
    }

    private static float dot(float[] w, int w0, float[] x, int x0, int n) {
        return Contract.dot(w, w0, x, x0, n);
    }
}
