package dev.epic.coordinator.attention;

import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvPage;
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
    /**
     * Kept blocks that are its leading pages on its worker (started from, or kept from it), in position
     * order, and the worker incarnation that holds them: the worker shares their pages, so its KV budget
     * counts them once, in the prefix budget. Written by the engine thread, read by any.
     */
    private volatile long[] sharedBlocks = {};
    private volatile AttentionEndpoint sharedOn;
    private volatile long sharedEpoch = -1;
    /** Whether a block is still kept on the worker, by this coordinator's index. */
    private volatile java.util.function.LongPredicate kept = b -> false;
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

    /**
     * Blocks {@code ids}, of {@code blockPositions} each from position {@code start}, are kept on
     * {@code worker} (incarnation {@code epoch}) with its pages there: it started from them, or they were
     * kept from it.
     * Only blocks that continue its leading run of pages count (blocks of one page each: the worker
     * shares only those, and counts only a leading run); a run on another incarnation starts again.
     */
    void shares(AttentionEndpoint worker, long epoch, int start, int blockPositions, long[] ids,
            java.util.function.LongPredicate stillKept) {
        long[] run = worker == sharedOn && epoch == sharedEpoch ? sharedBlocks : new long[0];
        if (blockPositions != KvPage.POSITIONS || start != run.length * KvPage.POSITIONS) {
            return;
        }
        long[] more = java.util.Arrays.copyOf(run, run.length + ids.length);
        System.arraycopy(ids, 0, more, run.length, ids.length);
        kept = stillKept;
        sharedOn = worker;
        sharedEpoch = epoch;
        sharedBlocks = more;
    }

    /**
     * Positions of its leading pages that blocks still kept on its worker hold: the worker's budget, and
     * this coordinator's count of it, take them once, in the prefix budget (as {@link
     * dev.epic.model.HeapKvCache#keptPositions()} does in process). None before placement, nor once its
     * worker's incarnation has ended or it was placed elsewhere.
     */
    @Override
    public int keptPositions() {
        AttentionEndpoint w = endpoint;
        long[] run = sharedBlocks;
        if (w == null || w != sharedOn || epoch != sharedEpoch || w.epoch() != sharedEpoch) {
            return 0;
        }
        java.util.function.LongPredicate stillKept = kept;
        int n = 0;
        while (n < run.length && stillKept.test(run[n])) {
            n++;
        }
        return Math.min(n * KvPage.POSITIONS, capacity());
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
