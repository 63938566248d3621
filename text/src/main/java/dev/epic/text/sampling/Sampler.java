package dev.epic.text.sampling;

import java.util.random.RandomGenerator;

/**
 * Picks the next token from logits: penalties -> (temperature 0: argmax) -> temperature -> top-k -> top-p
 * -> min-p -> draw. Holds reusable scratch buffers, so one instance can serve many sequences on one thread
 * (not thread-safe); the per-sequence state (history, RNG) is passed in.
 *
 * <p>The logits array is used as scratch: penalties are applied in place and NaN entries become -inf.
 */
public final class Sampler {
    private int[] idx = new int[0];
    private float[] weight = new float[0];

    /**
     * Samples one token id in [0, n) from logits[0..n). {@code history} may be null (no penalties).
     *
     * @throws IllegalStateException if no token has a finite or +inf logit
     */
    public int sample(float[] logits, int n, SamplingParams p, TokenHistory history, RandomGenerator rng) {
        if (n <= 0 || n > logits.length) {
            throw new IllegalArgumentException("n must be in [1, " + logits.length + "], got " + n);
        }
        if (history != null && p.hasPenalties()) {
            history.applyPenalties(logits, n, p);
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            float l = logits[i];
            if (Float.isNaN(l)) {
                logits[i] = Float.NEGATIVE_INFINITY;
            } else if (l > max) {
                max = l;
            }
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw new IllegalStateException("no token has a usable logit (all " + n + " are -inf or NaN)");
        }
        if (p.greedy()) {
            return argmax(logits, n);
        }
        ensureCapacity(n);
        int[] idx = this.idx;
        float[] w = this.weight;
        for (int i = 0; i < n; i++) {
            idx[i] = i;
        }
        int m = n;
        if (p.topKEnabled() && p.topK() < n) {
            TopSelect.selectTop(idx, n, p.topK(), logits);
            m = p.topK();
        }

        // Unnormalized probabilities relative to the top token: w = exp((l - max) / T), so w_max = 1.
        double invT = 1.0 / p.temperature();
        double sum = 0;
        for (int j = 0; j < m; j++) {
            int id = idx[j];
            float l = logits[id];
            float x;
            if (max == Float.POSITIVE_INFINITY) {
                x = l == Float.POSITIVE_INFINITY ? 1f : 0f;
            } else {
                x = (float) Math.exp((l - max) * invT);
            }
            w[id] = x;
            sum += x;
        }

        if (p.topP() < 1) {
            m = TopSelect.nucleus(idx, m, w, p.topP() * sum);
        }
        if (p.minP() > 0) {
            // p_i >= min_p * p_max  <=>  w_i >= min_p * w_max, and w_max = 1 (the top token is always kept).
            double threshold = p.minP();
            int kept = 0;
            for (int j = 0; j < m; j++) {
                if (w[idx[j]] >= threshold) {
                    idx[kept++] = idx[j];
                }
            }
            m = kept;
        }

        double total = 0;
        for (int j = 0; j < m; j++) {
            total += w[idx[j]];
        }
        double u = rng.nextDouble() * total;
        double acc = 0;
        int lastPositive = idx[0];
        for (int j = 0; j < m; j++) {
            float x = w[idx[j]];
            if (x > 0) {
                acc += x;
                lastPositive = idx[j];
                if (u < acc) {
                    return idx[j];
                }
            }
        }
        return lastPositive; // u landed on the rounding edge of the cumulative sum
    }

    /** Index of the largest logit in [0, n); the lowest id wins ties. */
    public static int argmax(float[] logits, int n) {
        int best = 0;
        float bestValue = logits[0];
        for (int i = 1; i < n; i++) {
            if (logits[i] > bestValue || Float.isNaN(bestValue)) {
                best = i;
                bestValue = logits[i];
            }
        }
        return best;
    }

    private void ensureCapacity(int n) {
        if (idx.length < n) {
            idx = new int[n];
            weight = new float[n];
        }
    }
}
