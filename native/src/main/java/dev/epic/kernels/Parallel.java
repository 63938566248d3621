package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * The shared kernel worker pool: persistent daemon threads that spin briefly, then park, waiting for
 * the next parallel loop. Decode issues thousands of small matmuls per second; a ForkJoin
 * submit/join per matmul measured ~20 us mean on the 2-core dev box against ~1 us here, because
 * workers stay hot for {@code epic.spinMicros} (default 50) after each loop. The caller takes chunks
 * too and never waits for a worker that has not started: it only waits for chunks already taken.
 *
 * <p>Size: {@code -Depic.threads=N} (default: available processors). Loops whose estimated work is
 * below {@code -Depic.parallel.minWork} (default 2^17 multiply-adds) run on the caller thread, as does
 * any loop started while the pool is busy (a concurrent caller or a nested loop): never blocks, never
 * deadlocks.
 */
public final class Parallel {
    /** A loop body over the index range [from, to). */
    @FunctionalInterface
    public interface Range {
        void run(int from, int to);
    }

    private static final int THREADS = Math.max(1, Integer.getInteger("epic.threads",
            Runtime.getRuntime().availableProcessors()));
    private static final long MIN_WORK = Long.getLong("epic.parallel.minWork", 1L << 17);
    private static final long SPIN_NANOS = Long.getLong("epic.spinMicros", 50L) * 1000L;

    private static final AtomicBoolean BUSY = new AtomicBoolean();
    private static final Worker[] WORKERS = new Worker[THREADS - 1];
    /** The latest loop; a worker runs chunks of each new job it sees (late workers find none left). */
    private static volatile Job current;

    /** One parallel loop: immutable split plus its own counters, so a late worker cannot mix jobs. */
    private static final class Job {
        final Range body;
        final int end;
        final int chunkSize;
        final int chunkCount;
        final AtomicInteger next = new AtomicInteger();
        final AtomicInteger done = new AtomicInteger();
        final AtomicReference<Throwable> failure = new AtomicReference<>();

        Job(Range body, int end, int chunkSize, int chunkCount) {
            this.body = body;
            this.end = end;
            this.chunkSize = chunkSize;
            this.chunkCount = chunkCount;
        }

        void runChunks() {
            int c;
            while ((c = next.getAndIncrement()) < chunkCount) {
                int from = c * chunkSize;
                try {
                    body.run(from, Math.min(end, from + chunkSize));
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
                done.incrementAndGet();
            }
        }
    }

    static {
        for (int i = 0; i < WORKERS.length; i++) {
            WORKERS[i] = new Worker(i);
            WORKERS[i].thread.start();
        }
    }

    private Parallel() {}

    /**
     * Whether the pool's workers may read seg. A segment from a confined arena belongs to one
     * thread; loops over it must stay on the caller.
     */
    public static boolean accessibleByWorkers(MemorySegment seg) {
        return WORKERS.length == 0 || seg.isAccessibleBy(WORKERS[0].thread);
    }

    /** The number of threads (workers plus the caller) a parallel loop uses. */
    public static int threads() {
        return THREADS;
    }

    /**
     * Runs body over [0, n) split into chunks whose boundaries are multiples of {@code align}
     * (except the end). {@code work} is the loop's cost estimate in multiply-adds; small loops stay
     * on the caller thread.
     */
    public static void forRange(int n, int align, long work, Range body) {
        if (n <= 0) {
            return;
        }
        int units = Math.ceilDiv(n, align);
        if (THREADS == 1 || work < MIN_WORK || units < 2 || !BUSY.compareAndSet(false, true)) {
            body.run(0, n);
            return;
        }
        try {
            // A few chunks per thread so a descheduled thread (the machine may be shared) costs less.
            int chunks = Math.min(units, THREADS * 4);
            int unitsPerChunk = Math.ceilDiv(units, chunks);
            Job job = new Job(body, n, unitsPerChunk * align, Math.ceilDiv(units, unitsPerChunk));
            current = job;
            for (Worker w : WORKERS) {
                if (w.parked) {
                    LockSupport.unpark(w.thread);
                }
            }
            job.runChunks();
            while (job.done.get() < job.chunkCount) {
                Thread.onSpinWait();
            }
            Throwable t = job.failure.get();
            if (t instanceof RuntimeException re) {
                throw re;
            } else if (t instanceof Error e) {
                throw e;
            } else if (t != null) {
                throw new IllegalStateException(t);
            }
        } finally {
            BUSY.set(false);
        }
    }

    private static final class Worker implements Runnable {
        final Thread thread;
        volatile boolean parked;

        Worker(int i) {
            thread = new Thread(this, "epic-kernel-" + (i + 1));
            thread.setDaemon(true);
        }

        @Override
        public void run() {
            Job seen = current;
            while (true) {
                long start = System.nanoTime();
                int spins = 0;
                while (current == seen) {
                    Thread.onSpinWait();
                    if ((++spins & 255) == 0 && System.nanoTime() - start > SPIN_NANOS) {
                        parked = true;
                        // Re-check after publishing parked: the caller publishes the job, then reads parked.
                        while (current == seen) {
                            LockSupport.park(this);
                        }
                        parked = false;
                    }
                }
                seen = current;
                seen.runChunks();
            }
        }
    }
}
