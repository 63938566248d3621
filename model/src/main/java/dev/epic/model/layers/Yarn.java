package dev.epic.model.layers;

import dev.epic.model.config.ModelConfig;
import dev.epic.model.config.RopeScaling;

/**
 * YaRN context extension (Peng et al. 2023) as DeepSeek-V3 configures it. Applied when
 * {@code rope_scaling} is present and max_position_embeddings exceeds the original length:
 * <pre>
 *   base[i]    = theta^(-2i/d)
 *   low        = max(floor(d ln(orig / (beta_fast 2 pi)) / (2 ln theta)), 0)
 *   high       = min(ceil (d ln(orig / (beta_slow 2 pi)) / (2 ln theta)), d - 1)
 *   ramp[i]    = clamp((i - low) / (high - low), 0, 1)
 *   inv_freq[i]= base[i] / factor * ramp[i] + base[i] * (1 - ramp[i])
 *   mscale(m)  = 0.1 m ln(factor) + 1
 *   softmax_scale = (qk_nope + qk_rope)^-0.5 * mscale(mscale_all_dim)^2
 * </pre>
 * cos/sin are multiplied by mscale(mscale) / mscale(mscale_all_dim), which is 1 for DeepSeek-V3.
 */
public final class Yarn {
    private Yarn() {}

    private static boolean active(ModelConfig c) {
        RopeScaling s = c.ropeScaling();
        return s != null && c.maxPositionEmbeddings() > s.originalMaxPositionEmbeddings();
    }

    /** inv_freq for the rope part of the head (d = qk_rope_head_dim), d/2 entries. */
    public static float[] inverseFrequencies(ModelConfig c) {
        int d = c.qkRopeHeadDim();
        double theta = c.ropeTheta();
        float[] freq = new float[d / 2];
        for (int i = 0; i < d / 2; i++) {
            freq[i] = (float) (1.0 / Math.pow(theta, (2.0 * i) / d));
        }
        if (!active(c)) {
            return freq;
        }
        RopeScaling s = c.ropeScaling();
        double low = Math.max(Math.floor(correctionDim(s.betaFast(), d, theta, s.originalMaxPositionEmbeddings())), 0);
        double high = Math.min(Math.ceil(correctionDim(s.betaSlow(), d, theta, s.originalMaxPositionEmbeddings())),
                d - 1);
        if (low == high) {
            high += 0.001; // as the reference: avoid a zero-width ramp
        }
        float factor = (float) s.factor();
        for (int i = 0; i < d / 2; i++) {
            float ramp = (float) Math.clamp((i - low) / (high - low), 0.0, 1.0);
            freq[i] = freq[i] / factor * ramp + freq[i] * (1 - ramp);
        }
        return freq;
    }

    /** Dimension index whose wavelength completes {@code rotations} turns over the original context. */
    private static double correctionDim(double rotations, int d, double theta, int originalLength) {
        return d * Math.log(originalLength / (rotations * 2 * Math.PI)) / (2 * Math.log(theta));
    }

    static double mscale(double factor, double m) {
        return factor <= 1 ? 1.0 : 0.1 * m * Math.log(factor) + 1.0;
    }

    /** Attention logit scale: 1/sqrt(qk_head_dim), times mscale(mscale_all_dim)^2 under YaRN. */
    public static float softmaxScale(ModelConfig c) {
        double scale = 1.0 / Math.sqrt(c.qkHeadDim());
        if (active(c) && c.ropeScaling().mscaleAllDim() != 0) {
            double m = mscale(c.ropeScaling().factor(), c.ropeScaling().mscaleAllDim());
            scale *= m * m;
        }
        return (float) scale;
    }

    /** Factor on cos/sin: mscale(mscale) / mscale(mscale_all_dim) (1 when they are equal). */
    public static float cosSinScale(ModelConfig c) {
        if (!active(c)) {
            return 1f;
        }
        RopeScaling s = c.ropeScaling();
        return (float) (mscale(s.factor(), s.mscale()) / mscale(s.factor(), s.mscaleAllDim()));
    }

    /** The model's rotary embedding: YaRN frequencies and cos/sin scale from its config. */
    public static Rope rope(ModelConfig c) {
        return new Rope(inverseFrequencies(c), cosSinScale(c));
    }
}
