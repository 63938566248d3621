package dev.epic.coordinator.scheduler;

/**
 * Draft tokens for speculative decoding by prompt lookup (n-gram matching, vLLM's "ngram" method):
 * the sequence's last n tokens are looked for earlier in its prompt and output, and the tokens that
 * followed them there are proposed. Costs no model: what repeats (code being edited, quoted
 * documents, an answer restating its input, a loop) is verified several tokens per step.
 *
 * @param tokens  most tokens proposed per step (vLLM's num_speculative_tokens); 0 turns it off
 * @param minN    shortest suffix matched (prompt_lookup_min)
 * @param maxN    longest suffix matched, tried first (prompt_lookup_max)
 * @param maxBusy no drafts in a step while more sequences than this are running (vLLM's
 *                disable_by_batch_size): a large batch already fills the kernels, and drafts that are
 *                not kept then cost throughput; 0 = no limit
 * @param mtp     draft with the model's multi-token-prediction layer instead (vLLM's deepseek_mtp
 *                method): what the MTP layer predicts after the pending token, chained on its own
 *                output for up to {@code tokens} drafts a step
 */
public record PromptLookup(int tokens, int minN, int maxN, int maxBusy, boolean mtp) {
    public static final PromptLookup OFF = new PromptLookup(0, 1, 1);

    /** No batch-size limit. */
    public PromptLookup(int tokens, int minN, int maxN) {
        this(tokens, minN, maxN, 0);
    }

    public PromptLookup(int tokens, int minN, int maxN, int maxBusy) {
        this(tokens, minN, maxN, maxBusy, false);
    }

    /** Drafts by the MTP layer: one token a step, none while more than {@code maxBusy} sequences run (0: no limit). */
    public static PromptLookup mtp(int maxBusy) {
        return mtp(1, maxBusy);
    }

    /** Drafts by the MTP layer, chained to {@code tokens} a step. */
    public static PromptLookup mtp(int tokens, int maxBusy) {
        return new PromptLookup(tokens, 1, 1, maxBusy, true);
    }

    public PromptLookup {
        if (maxBusy < 0) {
            throw new IllegalArgumentException("the batch size that disables speculation must be >= 0, got " + maxBusy);
        }
        if (tokens < 0) {
            throw new IllegalArgumentException("speculative tokens must be >= 0, got " + tokens);
        }
        if (mtp && tokens < 1) {
            throw new IllegalArgumentException("MTP drafting needs at least 1 speculative token, got " + tokens);
        }
        if (minN < 1 || maxN < minN) {
            throw new IllegalArgumentException("prompt lookup needs 1 <= min <= max, got min " + minN + ", max " + maxN);
        }
    }

    public boolean enabled() {
        return tokens > 0;
    }

    /** Whether a step with {@code running} sequences drafts. */
    public boolean draftsAt(int running) {
        return enabled() && (maxBusy == 0 || running <= maxBusy);
    }

    /**
     * Up to {@code limit} (and {@link #tokens}) tokens to follow {@code context[0, length)}: the
     * longest suffix of {@code maxN} down to {@code minN} tokens that occurred before, at its latest
     * occurrence, and what followed it there. Empty when no suffix recurs.
     */
    public int[] propose(int[] context, int length, int limit) {
        int most = Math.min(tokens, limit);
        if (most <= 0) {
            return EMPTY;
        }
        for (int n = Math.min(maxN, length - 1); n >= minN; n--) {
            int suffix = length - n;
            // Latest start i < suffix with context[i, i + n) == context[suffix, length): a match that
            // overlaps the suffix is fine, what follows it is still known.
            for (int i = suffix - 1; i >= 0; i--) {
                if (matches(context, i, suffix, n)) {
                    int from = i + n;
                    int count = Math.min(most, length - from);
                    int[] draft = new int[count];
                    System.arraycopy(context, from, draft, 0, count);
                    return draft;
                }
            }
        }
        return EMPTY;
    }

    private static boolean matches(int[] a, int i, int j, int n) {
        for (int k = 0; k < n; k++) {
            if (a[i + k] != a[j + k]) {
                return false;
            }
        }
        return true;
    }

    private static final int[] EMPTY = new int[0];
}
