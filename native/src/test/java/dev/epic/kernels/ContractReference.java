package dev.epic.kernels;

/**
 * The accumulation contract of {@link Contract}, written out in scalar Java as its executable
 * definition: per chunk of {@link Contract#CHUNK} columns, lane i (of L) takes the columns
 * k0 + i (mod L) with one fused multiply-add each in ascending order, the lanes are summed by the
 * pairwise tree a[i] += a[i + n] (n = L/2, L/4, .. 1), the columns past the last whole vector are
 * added one by one (product rounded, then sum), and the chunk sums are added in order.
 */
final class ContractReference {
    private ContractReference() {}

    /** W[r, :] . x[xOff ..] under the contract, w being the row as {@link Matrix#row} widens it. */
    static float dot(float[] w, float[] x, int xOff, int cols) {
        int lanes = Simd.L;
        float s = 0f;
        for (int k0 = 0; k0 < cols; k0 += Contract.CHUNK) {
            int k1 = Math.min(cols, k0 + Contract.CHUNK);
            int body = k1 - (k1 - k0) % lanes;
            float[] acc = new float[lanes];
            for (int c = k0; c < body; c++) {
                int lane = (c - k0) % lanes;
                acc[lane] = Math.fma(w[c], x[xOff + c], acc[lane]);
            }
            for (int n = lanes / 2; n >= 1; n /= 2) {
                for (int i = 0; i < n; i++) {
                    acc[i] = acc[i] + acc[i + n];
                }
            }
            float p = acc[0];
            for (int c = body; c < k1; c++) {
                p += w[c] * x[xOff + c];
            }
            s = k0 == 0 ? p : s + p;
        }
        return s;
    }

    /** out[b, r] for all rows and a batch of inputs, under the contract. */
    static float[] matmul(Matrix m, float[] x, int batch) {
        int rows = m.rows(), cols = m.cols();
        float[] out = new float[batch * rows];
        float[] w = new float[cols];
        for (int r = 0; r < rows; r++) {
            m.row(r, w, 0);
            for (int b = 0; b < batch; b++) {
                out[b * rows + r] = dot(w, x, b * cols, cols);
            }
        }
        return out;
    }
}
