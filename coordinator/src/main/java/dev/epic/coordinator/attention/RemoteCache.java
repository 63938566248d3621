package dev.epic.coordinator.attention;

import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvPool;

/**
 * The coordinator's handle on a sequence's KV cache held by an attention worker: its id, the worker
 * it was placed on (at its first step), the positions it holds and those reserved for it (sent to
 * the worker, which holds that much memory for it, and counted against the worker's KV budget
 * here). The latents themselves never come here, so reading or writing them is refused.
 */
final class RemoteCache implements KvCache {
    final long id;
    /** Set at placement; with {@link #epoch}, the worker incarnation that holds the cache. */
    AttentionEndpoint endpoint;
    long epoch;
    /** Times its first chunk was moved to another worker (after a failure or a refusal): bounded. */
    int moves;
    /**
     * Prefix blocks kept on its worker that it starts from (prefix caching), sent with its layer-0
     * segments until a whole step has run there; null when it did not start from any or has run.
     */
    long[] prefixBlocks;
    private int length;
    private int reserved;
    private int expected;
    private boolean released;
    private final KvCacheDtype dtype;

    RemoteCache(long id, KvCacheDtype dtype) {
        this.id = id;
        this.dtype = dtype;
    }

    /** How its worker stores it (the workers announce theirs; others are refused). */
    @Override
    public KvCacheDtype dtype() {
        return dtype;
    }

    @Override
    public int length() {
        return length;
    }

    @Override
    public void setLength(int length) {
        if (length < 0) {
            throw new IllegalArgumentException("cache length " + length + " is negative");
        }
        this.length = length;
    }

    /** Reserved on the worker at the next layer-0 message (it holds the memory from then). */
    @Override
    public void reserve(int positions) {
        reserved = Math.max(reserved, positions);
    }

    @Override
    public void expectAtMost(int positions) {
        expected = positions;
    }

    /** Positions it may come to hold on its worker: what placement makes room for. */
    int expectedCapacity() {
        return Math.max(expected, capacity());
    }

    /** Positions the worker holds memory for, as this coordinator counts them. */
    @Override
    public int capacity() {
        return Math.max(reserved, length);
    }

    /** The worker it is placed on (null before its first step): that worker's budget holds it. */
    @Override
    public KvPool pool() {
        return endpoint;
    }

    @Override
    public void write(int layer, int pos, float[] latent, int latentOff, float[] kPe, int kPeOff) {
        throw remote();
    }

    @Override
    public void read(int layer, int end, float[] latent, float[] kPe) {
        throw remote();
    }

    private UnsupportedOperationException remote() {
        return new UnsupportedOperationException("cache " + id + " lives on attention worker "
                + (endpoint == null ? "(not placed yet)" : endpoint) + ": attention for it runs there");
    }

    @Override
    public synchronized void release() {
        if (!released && endpoint != null) {
            endpoint.release(this);
        }
        released = true;
    }

    @Override
    public String toString() {
        return "cache " + id + (endpoint == null ? "" : " on " + endpoint);
    }
}
