package dev.epic.text.sampling;

/**
 * Log-probabilities of one generated position under the model's own distribution,
 * {@code log softmax(logits)}: the raw logits, before temperature, penalties and top-k/p filtering
 * (what vLLM returns by default), so they describe the model, not the sampling settings.
 *
 * @param token       the token chosen at this position
 * @param logprob     its log-probability
 * @param rank        its rank in the vocabulary, 1 for the most likely: the tokens at least as likely, itself
 *                    included (vLLM's rank, so tied tokens share the last of their ranks)
 * @param topTokens   the {@code top} most likely tokens, most likely first (ties: lower id first)
 * @param topLogprobs their log-probabilities
 */
public record Logprobs(int token, float logprob, int rank, int[] topTokens, float[] topLogprobs) {
    /** The most alternatives a request may ask for (vLLM's default max_logprobs). */
    public static final int MAX_TOP = 20;

    /** Over logits[0, n): the chosen token's log-probability and the {@code top} best alternatives. */
    public static Logprobs of(float[] logits, int n, int token, int top) {
        return of(logits, 0, n, token, top);
    }

    /** As {@link #of(float[], int, int, int)} over logits[offset, offset + n) (one row of several); ids are relative. */
    public static Logprobs of(float[] logits, int offset, int n, int token, int top) {
        float max = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            max = Math.max(max, logits[offset + i]);
        }
        float chosen = logits[offset + token];
        double sum = 0;
        int rank = 0; // counted in the same pass over the row
        for (int i = 0; i < n; i++) {
            sum += Math.exp(logits[offset + i] - max);
            rank += logits[offset + i] >= chosen ? 1 : 0;
        }
        double logZ = max + Math.log(sum);
        int k = Math.min(top, n);
        int[] best = new int[k];
        int size = 0;
        for (int i = 0; i < n && k > 0; i++) {
            // Insertion into the small sorted list; a later equal logit never displaces an earlier id.
            float v = logits[offset + i];
            if (size == k && !(v > logits[offset + best[k - 1]])) {
                continue;
            }
            int j = size < k ? size++ : k - 1;
            while (j > 0 && v > logits[offset + best[j - 1]]) {
                best[j] = best[j - 1];
                j--;
            }
            best[j] = i;
        }
        float[] lp = new float[k];
        for (int j = 0; j < k; j++) {
            lp[j] = (float) (logits[offset + best[j]] - logZ);
        }
        return new Logprobs(token, (float) (chosen - logZ), rank, best, lp);
    }
}
