package dev.epic.transport;

import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.ScheduledFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

/**
 * Workers whose ZooKeeper node went, kept for a grace period in case the node comes back: after a
 * ZooKeeper outage longer than the session timeout every session expires at once, and each worker
 * re-creates its node a moment later although it never stopped. A coordinator's worker directory
 * starts a grace when a node goes, cancels it when the node comes back, and drops the worker when it
 * expires.
 *
 * <p>Not thread-safe on its own: every call, and every expiry, holds the directory's monitor
 * ({@code lock}), so a grace expires only if it is still the pending one for its path. A timer
 * already waiting for that monitor when the node came back (and went again) must not drop the
 * worker, nor cut the newer grace short.
 */
public final class LeaveGrace {
    private final Object lock;
    private final Duration grace;
    private final ScheduledExecutorService timer;
    private final Map<String, ScheduledFuture<?>> pending = new HashMap<>(); // guarded by lock

    /** @param timer runs the expiries; once it is shut down no grace starts */
    public LeaveGrace(Object lock, Duration grace, ScheduledExecutorService timer) {
        this.lock = lock;
        this.grace = grace;
        this.timer = timer;
    }

    /** Whether a grace would start: a positive period and a running timer. */
    public boolean enabled() {
        return grace.isPositive() && !timer.isShutdown();
    }

    public long millis() {
        return grace.toMillis();
    }

    /** Starts {@code path}'s grace; {@code expire} runs holding the lock unless it is cancelled first. */
    public void start(String path, Runnable expire) {
        AtomicReference<ScheduledFuture<?>> self = new AtomicReference<>();
        self.set(timer.schedule(() -> {
            synchronized (lock) {
                if (pending.get(path) == self.get()) {
                    pending.remove(path);
                    expire.run();
                }
            }
        }, grace.toMillis(), TimeUnit.MILLISECONDS));
        pending.put(path, self.get());
    }

    public boolean pending(String path) {
        return pending.containsKey(path);
    }

    /** The paths in grace now (a copy). */
    public java.util.List<String> paths() {
        return java.util.List.copyOf(pending.keySet());
    }

    /** Ends {@code path}'s grace without its expiry; true if one was pending. */
    public boolean cancel(String path) {
        ScheduledFuture<?> f = pending.remove(path);
        if (f != null) {
            f.cancel(false);
        }
        return f != null;
    }

    /** Ends every grace without expiry (the directory closes). */
    public void clear() {
        pending.values().forEach(f -> f.cancel(false));
        pending.clear();
    }
}
