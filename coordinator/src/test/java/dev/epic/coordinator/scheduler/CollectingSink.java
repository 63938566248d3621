package dev.epic.coordinator.scheduler;

import dev.epic.text.generate.Delta;
import dev.epic.text.generate.GenerationResult;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;

/** Folds a task's deltas; completes when the sequence ends in any way. */
class CollectingSink implements GenerationTask.Sink {
    final GenerationResult.Accumulator all = new GenerationResult.Accumulator();
    final CompletableFuture<GenerationResult> done = new CompletableFuture<>();
    final CountDownLatch firstToken = new CountDownLatch(1);
    volatile boolean wasCancelled;
    private volatile Runnable onFinished = () -> { };

    /**
     * Runs {@code r} on the engine thread as the last delta arrives, before {@link #done} completes: an
     * order of finishing recorded here is the engine's. (A {@code done.thenRun} may instead run on a
     * thread waiting in {@code done.get}, which CompletableFuture lets help, so later than the engine.)
     */
    CollectingSink onFinished(Runnable r) {
        onFinished = r;
        return this;
    }

    @Override
    public void delta(Delta d) {
        all.add(d);
        firstToken.countDown();
        if (d.finished()) {
            onFinished.run();
            done.complete(all.build());
        }
    }

    @Override
    public void cancelled(Delta last) {
        wasCancelled = true;
        all.add(last);
        done.complete(all.build());
    }

    @Override
    public void failed(Throwable error) {
        done.completeExceptionally(error);
    }
}
