package dev.epic.coordinator.experts;

import dev.epic.worker.ExpertShard;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A worker's experts whose first message stalls until {@link #release}d: a worker that misses its
 * deadline (a GC pause, a long message) or, never released, hangs. Workers compute on their
 * connection's event loop, so whatever comes behind the stalled message on that connection waits too.
 */
public final class StallingShard implements ExpertShard {
    private final ExpertShard shard;
    private final AtomicBoolean first = new AtomicBoolean(true);
    private final CountDownLatch released = new CountDownLatch(1);

    public StallingShard(ExpertShard shard) {
        this.shard = shard;
    }

    /** The stalled message, and all after it, go through. */
    public void release() {
        released.countDown();
    }

    @Override
    public void apply(int layer, int expert, float[] x, int batch, float[] y) {
        if (first.getAndSet(false)) {
            try {
                released.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        shard.apply(layer, expert, x, batch, y);
    }

    @Override
    public int hiddenSize() {
        return shard.hiddenSize();
    }

    @Override
    public int expertCount() {
        return shard.expertCount();
    }

    @Override
    public int[] experts() {
        return shard.experts();
    }

    @Override
    public boolean isMoeLayer(int layer) {
        return shard.isMoeLayer(layer);
    }

    @Override
    public boolean hosts(int layer, int expert) {
        return shard.hosts(layer, expert);
    }

    @Override
    public long residentBytes() {
        return shard.residentBytes();
    }
}
