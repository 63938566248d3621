package dev.epic.model;

/**
 * Automatic prefix caching as the scheduler uses it: the KV of prompt prefixes seen before, so that a
 * request starting like an earlier one prefills only what is new. Kept in this process's heap, or on
 * the attention workers that hold the sequences' caches.
 */
public interface PrefixStore {
    /**
     * Starts the empty {@code cache} with the longest kept prefix of {@code prompt} and returns its length
     * in tokens, always leaving the prompt's last token to compute (its logits are the first needed).
     */
    int restore(int[] prompt, KvCache cache);

    /**
     * Tokens of {@code prompt} that {@link #restore} would start a new cache of {@code positions} with,
     * changing nothing: what a KV budget need not count for it when it joins, since the cache shares those
     * pages with the kept blocks. The default: none.
     */
    default int matchedTokens(int[] prompt, int positions) {
        return 0;
    }

    /** Keeps what {@code cache} holds of {@code prompt}'s leading tokens (call once they are prefilled). */
    void store(int[] prompt, KvCache cache);

    /** Whether a prompt of this many tokens can keep what a later request would restore. */
    boolean canHold(int promptTokens);

    /** Prompt tokens looked up so far. */
    long queriedTokens();

    /** Prompt tokens found kept so far (not prefilled again). */
    long hitTokens();

    /** Bytes of KV kept now. */
    long storedBytes();
}
