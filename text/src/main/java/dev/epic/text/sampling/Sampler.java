package dev.epic.text.sampling;

import java.util.random.RandomGenerator;

/**
 * Picks the next token from logits: penalties -> (temperature 0: argmax) -> temperature -> top-k -> top-p
 * -> min-p -> draw. Holds reusable scratch buffers, so one instance can serve many sequences on one thread
 * (not thread-safe); the per-sequence state (history, RNG) is passed in. No full sort of the vocabulary:
 * top-k is a heap scan, top-p an exact pre-filter plus quickselect.
 *
 * <p>The logits array is used as scratch: penalties are applied in place and NaN entries become -inf.
 */
public final class Sampler {
    private static final int HEAP_TOP_K_LIMIT = 2048;

    private int[] idx = new int[0];
    private float[] weight = new float[0];
    private boolean[] kept = new boolean[0];

    /**
     * Samples one token id in [0, n) from logits[0..n). {@code history} may be null (no penalties).
     *
     * @throws IllegalStateException if every logit is -inf or NaN
     */
    public int sample(float[] logits, int n, SamplingParams p, TokenHistory history, RandomGenerator rng) {
        if (n <= 0 || n > logits.length) {
            throw new IllegalArgumentException("n must be in [1, " + logits.length + "], got " + n);
        }
        if (history != null && p.hasPenalties()) {
            history.applyPenalties(logits, n, p);
        }
        float max = LogitMath.max(logits, n);
        if (Float.isNaN(max)) {
            for (int i = 0; i < n; i++) {
                if (Float.isNaN(logits[i])) {
                    logits[i] = Float.NEGATIVE_INFINITY;
                }
            }
            max = LogitMath.max(logits, n);
        }
        if (max == Float.NEGATIVE_INFINITY) {
            throw new IllegalStateException("no token has a usable logit (all " + n + " are -inf or NaN)");
        }
        if (p.greedy()) {
            return firstIndexOf(logits, n, max);
        }
        ensureCapacity(n);
        int[] idx = this.idx;
        float[] w = this.weight;
        float invT = (float) (1.0 / p.temperature());

        // Candidates idx[0..m) with unnormalized probabilities w[id] = exp((l - max) / T), so w_max = 1.
        int m;
        double sum = 0;
        if (max == Float.POSITIVE_INFINITY) {
            m = 0;
            for (int i = 0; i < n; i++) {
                if (logits[i] == Float.POSITIVE_INFINITY) {
                    idx[m++] = i;
                    w[i] = 1f;
                }
            }
            sum = m;
        } else if (p.topKEnabled() && p.topK() < n) {
            m = p.topK();
            if (m <= HEAP_TOP_K_LIMIT) {
                TopSelect.topKByHeap(logits, n, m, idx);
            } else {
                fillIdentity(idx, n);
                TopSelect.selectTop(idx, n, m, logits);
            }
            for (int j = 0; j < m; j++) {
                int id = idx[j];
                float x = (float) Math.exp((logits[id] - max) * invT);
                w[id] = x;
                sum += x;
            }
        } else {
            m = n;
            fillIdentity(idx, n);
            sum = LogitMath.expWeights(logits, n, max, invT, w);
        }

        if (p.topP() < 1 || p.minP() > 0) {
            // Exact pre-filter before any selection: tokens below t = max(min_p, (1 - top_p) * sum / m) cannot
            // survive. For min-p that is its rule; for top-p, all of them together weigh less than
            // (1 - top_p) * sum, so the others already reach the nucleus mass and contain the nucleus.
            double t = Math.max(p.minP(), p.topP() < 1 ? (1 - p.topP()) * sum / m : 0);
            int kept = 0;
            for (int j = 0; j < m; j++) {
                int id = idx[j];
                if (w[id] >= t) {
                    idx[kept++] = id;
                }
            }
            m = kept;
        }
        if (p.topP() < 1) {
            // smallest set of most likely tokens whose probability reaches top_p
            m = TopSelect.nucleus(idx, m, w, p.topP() * sum);
        }
        // min-p (p_i >= min_p * p_max <=> w_i >= min_p, as w_max = 1) was applied by the pre-filter; the top
        // token always survives every filter.

        // The draw walks the candidates in token-id order, not in the order the selections left them:
        // logits a hair apart (a sequence's recomputed prefill against its decode steps, within 1e-5)
        // can permute near-equal candidates, and the same random number would then land on another
        // token. In id order it lands elsewhere only when it falls that close to a boundary.
        double total = 0;
        if (m == n) {
            total = sum; // nothing was filtered: idx is the identity
        } else {
            inIdOrder(idx, m, n);
            for (int j = 0; j < m; j++) {
                total += w[idx[j]];
            }
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

    /** Index of the largest logit in [0, n) (NaN never wins); the lowest id wins ties. */
    public static int argmax(float[] logits, int n) {
        float max = LogitMath.max(logits, n);
        if (Float.isNaN(max)) {
            int best = -1;
            for (int i = 0; i < n; i++) {
                if (!Float.isNaN(logits[i]) && (best < 0 || logits[i] > logits[best])) {
                    best = i;
                }
            }
            return Math.max(best, 0);
        }
        return firstIndexOf(logits, n, max);
    }

    private static int firstIndexOf(float[] a, int n, float v) {
        for (int i = 0; i < n; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        throw new AssertionError("max not found");
    }

    private static void fillIdentity(int[] idx, int n) {
        for (int i = 0; i < n; i++) {
            idx[i] = i;
        }
    }

    private void ensureCapacity(int n) {
        if (idx.length < n) {
            idx = new int[n];
            weight = new float[n];
            kept = new boolean[n];
        }
    }

    /**
     * Puts idx[0..m) (distinct ids below n) in ascending order: a sort when they are few (a real
     * model's nucleus), otherwise one pass over the vocabulary (a flat distribution's nucleus can be
     * most of it, and sorting 100,000 ids per token costs milliseconds).
     */
    private void inIdOrder(int[] idx, int m, int n) {
        if ((long) m * 16 < n) {
            java.util.Arrays.sort(idx, 0, m);
            return;
        }
        boolean[] kept = this.kept;
        for (int j = 0; j < m; j++) {
            kept[idx[j]] = true;
        }
        for (int id = 0, j = 0; id < n; id++) {
            if (kept[id]) {
                kept[id] = false;
                idx[j++] = id;
            }
        }
    }
}
