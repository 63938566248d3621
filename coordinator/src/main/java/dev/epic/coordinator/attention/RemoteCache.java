package dev.epic.coordinator.attention;

import dev.epic.model.KvCache;

/**
 * The coordinator's handle on a sequence's KV cache held by an attention worker: its id, the worker
 * it was placed on (at its first step) and the positions it holds. The latents themselves never
 * come here, so reading or writing them is refused.
 */
final class RemoteCache implements KvCache {
    final long id;
    /** Set at placement; with {@link #epoch}, the worker incarnation that holds the cache. */
    AttentionEndpoint endpoint;
    long epoch;
    /** Times its first chunk was moved to another worker (after a failure or a refusal): bounded. */
    int moves;
    private int length;
    private boolean released;

    RemoteCache(long id) {
        this.id = id;
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
