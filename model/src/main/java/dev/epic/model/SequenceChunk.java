package dev.epic.model;

/**
 * One sequence's share of a step: tokens at positions start, start+1, ... appended to its cache.
 * A prefill chunk has many tokens, a decode step one. {@code allLogits} asks for the logits of every
 * position instead of only the last.
 */
public record SequenceChunk(KvCache cache, int[] tokens, int start, boolean allLogits) {
    public SequenceChunk(KvCache cache, int[] tokens, int start) {
        this(cache, tokens, start, false);
    }

    /** Continues the cache where it ends. */
    public static SequenceChunk next(KvCache cache, int... tokens) {
        return new SequenceChunk(cache, tokens, cache.length(), false);
    }
}
