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
        for (int i = 0; i < invFreq.length; i++) {
            float angle = pos * invFreq[i]; // fp32, as torch.outer(t, freqs)
            float cos = (float) Math.cos(angle) * cosSinScale;
            float sin = (float) Math.sin(angle) * cosSinScale;
            float a = x[off + 2 * i];
            float b = x[off + 2 * i + 1];
            x[off + 2 * i] = a * cos - b * sin;
            x[off + 2 * i + 1] = a * sin + b * cos;
        }
    }
}
