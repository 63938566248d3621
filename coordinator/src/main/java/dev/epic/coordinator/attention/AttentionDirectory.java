package dev.epic.coordinator.attention;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCacheDtype;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.LeaveGrace;
import dev.epic.transport.WorkerWatch;
import dev.epic.transport.ZkLayout;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
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
    static final Duration LEAVE_GRACE = Duration.ofSeconds(5);

    private final Map<String, AttentionEndpoint> endpoints = new HashMap<>(); // guarded by this
    private final ScheduledExecutorService timer = Executors.newSingleThreadScheduledExecutor(
            Thread.ofPlatform().name("epic-attention-leave").daemon(true).factory());
    private final LeaveGrace leaving; // guarded by this
    private volatile List<AttentionEndpoint> workers = List.of();
    private final WorkerWatch watch;

    /**
     * @param weights      the weight format workers must announce (the coordinator's --weights); null: any
     * @param kvCacheDtype how their caches must store positions (the coordinator's --kv-cache-dtype)
     * @param mtpLayer     whether they must run the MTP layer's attention (a coordinator drafting with it)
     */
    AttentionDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, String weights,
            KvCacheDtype kvCacheDtype, boolean mtpLayer) {
        this(zk, cluster, fingerprint, weights, kvCacheDtype, mtpLayer, LEAVE_GRACE);
    }

    AttentionDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, String weights,
            KvCacheDtype kvCacheDtype, Duration leaveGrace) {
        this(zk, cluster, fingerprint, weights, kvCacheDtype, false, leaveGrace);
    }

    AttentionDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, String weights,
            KvCacheDtype kvCacheDtype, boolean mtpLayer, Duration leaveGrace) {
        this.leaving = new LeaveGrace(this, leaveGrace, timer);
        this.watch = new WorkerWatch(zk, ZkLayout.attentionWorkersPath(cluster), "attention worker",
                fingerprint.sha256(), fingerprint.name(), weights, kvCacheDtype.id(), mtpLayer, this);
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
        boolean wasLeaving = leaving.cancel(path);
        if (existing != null && existing.announcement().getAddress().equals(a.getAddress())
                && existing.announcement().getPid() == a.getPid()) {
            if (wasLeaving) {
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
        if (w == null || leaving.pending(path)) {
            return;
        }
        if (leaving.enabled()) {
            log.info("attention worker {} left ZooKeeper: no new sequences; its {} go on for {} ms in case its node "
                    + "comes back (a session replaced after an outage)", w, w.placed(), leaving.millis());
            leaving.start(path, () -> drop(path, w));
            publish();
            return;
        }
        drop(path, w);
    }

    @Override
    public synchronized void left(String path) {
        AttentionEndpoint w = endpoints.get(path);
        if (w != null) {
            drop(path, w);
        }
    }

    private synchronized void drop(String path, AttentionEndpoint w) {
        leaving.cancel(path);
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
        workers = endpoints.entrySet().stream().filter(e -> !leaving.pending(e.getKey())).map(Map.Entry::getValue)
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
