package dev.epic.coordinator;

import dev.epic.coordinator.scheduler.Scheduler;
import dev.epic.model.ForwardWarmup;
import dev.epic.model.Transformer;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A coordinator's forward warm-up ({@link ForwardWarmup}): asked for at start, run on the engine
 * thread once the cluster can serve (every expert covered, attention there), and readiness waits for
 * it, so a load balancer sends the first requests to compiled kernels. A warm-up that fails (a worker
 * died meanwhile) is logged and counts as done: the first requests then compile the kernels instead.
 */
final class ServingWarmup {
    private static final Logger log = LoggerFactory.getLogger(ServingWarmup.class);

    private enum State { OFF, WAITING, QUEUED, DONE }

    private final AtomicReference<State> state = new AtomicReference<>(State.OFF);
    private final CountDownLatch done = new CountDownLatch(1);

    /** Asks for the warm-up; it runs at the next {@link #poll} that finds the cluster able to serve. */
    void request() {
        state.compareAndSet(State.OFF, State.WAITING);
    }

    /** The health check's call, once a second: queues the warm-up when asked for and the cluster can serve. */
    void poll(boolean canServe, Scheduler scheduler, Transformer model) {
        if (!canServe || !state.compareAndSet(State.WAITING, State.QUEUED)) {
            return;
        }
        scheduler.runWhenIdle(() -> {
            try {
                ForwardWarmup.Result r = ForwardWarmup.run(model, scheduler.options().prefillBudget());
                log.info("forward warm-up: {} steps, {} tokens in {} ms (the kernels are compiled before the first "
                        + "request)", r.steps(), r.tokens(), r.millis());
            } catch (RuntimeException e) {
                log.warn("forward warm-up failed (the first requests compile the kernels instead): {}", e.toString());
            } finally {
                state.set(State.DONE);
                done.countDown();
            }
        });
    }

    /** Asked for and not over (Stats.warming_up). */
    boolean pending() {
        return !settled();
    }

    /** Not asked for, or over: readiness need not wait. */
    boolean settled() {
        State s = state.get();
        return s == State.OFF || s == State.DONE;
    }

    /** Waits up to {@code timeout} for an asked-for warm-up to end; true if it did (or none was asked for). */
    boolean await(Duration timeout) throws InterruptedException {
        return state.get() == State.OFF || done.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }
}
