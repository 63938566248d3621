package dev.epic.model.layers;

/** RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * w, per row of width w.length. */
public final class RmsNorm {
    private final float[] weight;
    private final float eps;

    public RmsNorm(float[] weight, double eps) {
        this.weight = weight;
        this.eps = (float) eps;
    }

    public int width() {
        return weight.length;
    }

    /** Normalises {@code rows} rows of {@code x} (row stride {@code stride}, starting at column {@code col}) into out. */
    public void apply(float[] x, int xStride, int xCol, float[] out, int outStride, int outCol, int rows) {
        int d = weight.length;
        for (int r = 0; r < rows; r++) {
            int xo = r * xStride + xCol;
            int oo = r * outStride + outCol;
            double sumSq = 0;
            for (int i = 0; i < d; i++) {
                sumSq += x[xo + i] * x[xo + i];
            }
            float inv = (float) (1.0 / Math.sqrt((float) (sumSq / d) + eps));
            for (int i = 0; i < d; i++) {
                out[oo + i] = x[xo + i] * inv * weight[i];
            }
        }
    }

    /** Rows of exactly {@code width()} floats, packed. */
    public void apply(float[] x, float[] out, int rows) {
        apply(x, weight.length, 0, out, weight.length, 0, rows);
    }
}
