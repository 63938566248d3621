package dev.epic.coordinator.attention;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.WorkerWatch;
import dev.epic.transport.ZkLayout;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches {@code /epic/<cluster>/attention} and keeps the attention workers of this coordinator's
 * model. A worker whose node goes (it left, crashed, or lost its ZooKeeper session) takes no new
 * sequences at once, and is closed after {@link #LEAVE_GRACE}, when the sequences still placed on it
 * are lost: closing its channel ends its stream, and the worker drops that stream's caches too. The
 * grace is for ZooKeeper outages longer than the session timeout: every session expires at once and
 * each worker re-creates its node a moment later; the same process (address and pid) coming back
 * keeps its sequences. A worker that died fails its stream meanwhile, as before.
 */
final class AttentionDirectory implements AutoCloseable, WorkerWatch.Listener {
    private static final Logger log = LoggerFactory.getLogger(AttentionDirectory.class);

    /** How long a worker whose node went keeps its sequences, for its node to come back. */
    static final java.time.Duration LEAVE_GRACE = java.time.Duration.ofSeconds(5);

    private final Map<String, AttentionEndpoint> endpoints = new HashMap<>(); // guarded by this
    private final Map<String, java.util.concurrent.ScheduledFuture<?>> leaving = new HashMap<>(); // guarded by this
    private final java.time.Duration leaveGrace;
    private final java.util.concurrent.ScheduledExecutorService timer =
            java.util.concurrent.Executors.newSingleThreadScheduledExecutor(
                    Thread.ofPlatform().name("epic-attention-leave").daemon(true).factory());
    private volatile List<AttentionEndpoint> workers = List.of();
    private final WorkerWatch watch;

    AttentionDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint) {
        this(zk, cluster, fingerprint, LEAVE_GRACE);
    }

    AttentionDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint,
            java.time.Duration leaveGrace) {
        this.leaveGrace = leaveGrace;
        this.watch = new WorkerWatch(zk, ZkLayout.attentionWorkersPath(cluster), "attention worker",
                fingerprint.sha256(), fingerprint.name(), this);
    }

    /** The registered workers of this model, ordered by path. */
    List<AttentionEndpoint> workers() {
        return workers;
    }

    /** Registered attention workers this coordinator refuses, with why. */
    java.util.List<dev.epic.proto.RefusedWorker> refused() {
        return watch.refused();
    }

    @Override
    public synchronized void upsert(String path, WorkerAnnouncement a) {
        AttentionEndpoint existing = endpoints.get(path);
        java.util.concurrent.ScheduledFuture<?> pending = leaving.remove(path);
        if (pending != null) {
            pending.cancel(false);
        }
        if (existing != null && existing.announcement().getAddress().equals(a.getAddress())
                && existing.announcement().getPid() == a.getPid()) {
            if (pending != null) {
                log.info("attention worker {} is back in ZooKeeper: its sequences go on", existing);
                publish();
            }
            return; // the same process rewrote (or re-created) its node: same worker, same caches
        }
        if (existing != null) {
            existing.close();
        }
        endpoints.put(path, new AttentionEndpoint(path, a));
        log.info("attention worker {} at {} joined (up to {} sequences)", a.getWorkerId(), a.getAddress(),
                a.getCapacity());
        publish();
    }

    @Override
    public synchronized void remove(String path) {
        AttentionEndpoint w = endpoints.get(path);
        if (w == null || leaving.containsKey(path)) {
            return;
        }
        if (leaveGrace.isPositive() && !timer.isShutdown()) {
            log.info("attention worker {} left ZooKeeper: no new sequences; its {} go on for {} ms in case its node "
                    + "comes back (a session replaced after an outage)", w, w.placed(), leaveGrace.toMillis());
            // The task checks that its own removal is still the pending one (see WorkerDirectory#remove).
            java.util.concurrent.atomic.AtomicReference<java.util.concurrent.ScheduledFuture<?>> self =
                    new java.util.concurrent.atomic.AtomicReference<>();
            self.set(timer.schedule(() -> expire(path, w, self.get()), leaveGrace.toMillis(),
                    java.util.concurrent.TimeUnit.MILLISECONDS));
            leaving.put(path, self.get());
            publish();
            return;
        }
        drop(path, w);
    }

    private synchronized void expire(String path, AttentionEndpoint w, java.util.concurrent.ScheduledFuture<?> removal) {
        if (leaving.get(path) == removal) {
            drop(path, w);
        }
    }

    private synchronized void drop(String path, AttentionEndpoint w) {
        leaving.remove(path);
        if (endpoints.get(path) != w) {
            return;
        }
        endpoints.remove(path);
        int lost = w.placed();
        log.info("attention worker {} left{}", w, lost == 0 ? "" : "; its " + lost + " sequence(s) are lost");
        w.close();
        publish();
    }

    private void publish() {
        workers = endpoints.entrySet().stream().filter(e -> !leaving.containsKey(e.getKey())).map(Map.Entry::getValue)
                .sorted(java.util.Comparator.comparing(AttentionEndpoint::path))
                .toList();
        notifyAll();
    }

    /** Waits until at least {@code count} workers are registered; false on timeout. */
    synchronized boolean await(int count, long timeout, TimeUnit unit) throws InterruptedException {
        return WorkerWatch.awaitUntil(this, () -> workers.size() >= count, timeout, unit);
    }

    @Override
    public synchronized void close() {
        timer.shutdownNow();
        leaving.clear();
        watch.close();
        endpoints.values().forEach(AttentionEndpoint::close);
        endpoints.clear();
        workers = List.of();
    }
}
