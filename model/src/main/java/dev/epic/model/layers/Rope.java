package dev.epic.model.layers;

/**
 * Rotary position embedding on interleaved pairs (x[2i], x[2i+1]), rotated by angle pos * inv_freq[i]
 * (DeepSeek's reference treats each pair as a complex number and multiplies by e^{i angle}):
 * <pre>
 *   x'[2i]   = x[2i] cos - x[2i+1] sin
 *   x'[2i+1] = x[2i] sin + x[2i+1] cos
 * </pre>
 */
public final class Rope {
    private final float[] invFreq;
    private final float cosSinScale;

    public Rope(float[] invFreq, float cosSinScale) {
        this.invFreq = invFreq;
        this.cosSinScale = cosSinScale;
    }

    public int dim() {
        return invFreq.length * 2;
    }

    /** Rotates x[off .. off + dim) in place for absolute position pos (0-based). */
    public void apply(float[] x, int off, int pos) {
        apply(x, off, angles(pos));
    }

    /** [cos_0, sin_0, cos_1, sin_1, ...] of position pos, so that many heads at one position share them. */
    public float[] angles(int pos) {
        float[] cs = new float[2 * invFreq.length];
        for (int i = 0; i < invFreq.length; i++) {
            float angle = pos * invFreq[i]; // fp32, as torch.outer(t, freqs)
            cs[2 * i] = (float) Math.cos(angle) * cosSinScale;
            cs[2 * i + 1] = (float) Math.sin(angle) * cosSinScale;
        }
        return cs;
    }

    /** Rotates x[off .. off + dim) in place by precomputed {@link #angles}. */
    public void apply(float[] x, int off, float[] cs) {
        for (int i = 0; i < invFreq.length; i++) {
            float cos = cs[2 * i];
            float sin = cs[2 * i + 1];
            float a = x[off + 2 * i];
            float b = x[off + 2 * i + 1];
            x[off + 2 * i] = a * cos - b * sin;
            x[off + 2 * i + 1] = a * sin + b * cos;
        }
    }
}
