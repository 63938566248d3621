package dev.epic.coordinator.experts;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.LeaveGrace;
import dev.epic.transport.WorkerWatch;
import dev.epic.transport.ZkLayout;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches {@code /epic/<cluster>/workers} and keeps the {@link RoutingTable}: workers joining,
 * leaving (ephemeral node gone) and re-registering. Workers announcing another model fingerprint
 * or protocol version are logged once and ignored. Suspect workers are probed in the background
 * ({@link WorkerEndpoint#probe}), so one that answers again counts for coverage again.
 *
 * <p>A worker whose node goes while it is the only one serving some experts stays for {@link #LEAVE_GRACE}:
 * after a ZooKeeper outage longer than the session timeout every session expires at once, and each
 * worker's node is deleted and re-created a moment later. Dropping it would fail the requests under
 * way (its calls cancelled, its experts uncovered) though the worker never stopped; one that really
 * died fails its calls and is marked down by them meanwhile. A worker with replicas leaves at once.
 */
final class WorkerDirectory implements AutoCloseable, WorkerWatch.Listener {
    private static final Logger log = LoggerFactory.getLogger(WorkerDirectory.class);

    /** How long a sole holder whose node went is kept for its node to come back (sessions re-created). */
    static final Duration LEAVE_GRACE = Duration.ofSeconds(5);

    private final int experts;
    private final Map<String, WorkerEndpoint> endpoints = new HashMap<>(); // guarded by this
    private final LeaveGrace leaving; // guarded by this
    private volatile RoutingTable table;
    private final WorkerWatch watch;
    private final ScheduledExecutorService prober;

    /**
     * @param probeEvery    how often suspect workers are probed (their failure backoff)
     * @param probeDeadline how long a probe may wait for its answer (a message's deadline)
     */
    WorkerDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, int experts,
            Duration probeEvery, Duration probeDeadline) {
        this(zk, cluster, fingerprint, experts, probeEvery, probeDeadline, LEAVE_GRACE, null);
    }

    /** @param weights the weight format workers must announce (null: any) */
    WorkerDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, int experts,
            Duration probeEvery, Duration probeDeadline, Duration leaveGrace, String weights) {
        this.experts = experts;
        this.table = new RoutingTable(experts, java.util.List.of());
        this.prober = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("epic-expert-probe").daemon(true).factory());
        this.leaving = new LeaveGrace(this, leaveGrace, prober);
        // Last: the watch calls back at once, from Curator's thread.
        this.watch = new WorkerWatch(zk, ZkLayout.workersPath(cluster), "expert worker", fingerprint.sha256(),
                fingerprint.name(), weights, this);
        long every = Math.max(1, probeEvery.toMillis());
        prober.scheduleWithFixedDelay(() -> {
            long now = System.nanoTime();
            table.workers().forEach(w -> w.probe(now, probeDeadline));
        }, every, every, TimeUnit.MILLISECONDS);
    }

    RoutingTable table() {
        return table;
    }

    /** Registered workers refused (another model, protocol or weight format), with why. */
    java.util.List<dev.epic.proto.RefusedWorker> refused() {
        return watch.refused();
    }

    /** A worker joined, or re-registered (it revives: its past failures are forgotten). */
    @Override
    public synchronized void upsert(String path, WorkerAnnouncement a) {
        if (leaving.cancel(path)) {
            log.info("expert worker {} is back in ZooKeeper", a.getWorkerId());
        }
        WorkerEndpoint existing = endpoints.get(path);
        if (existing != null && existing.address().equals(a.getAddress())) {
            existing.update(a);
        } else {
            if (existing != null) {
                existing.close();
            }
            endpoints.put(path, new WorkerEndpoint(path, a));
            log.info("expert worker {} at {} joined with experts {}", a.getWorkerId(), a.getAddress(),
                    ExpertRanges.format(a.getExpertsList().stream().mapToInt(Integer::intValue).toArray()));
        }
        // Workers kept after leaving go as soon as others cover their experts.
        for (String p : leaving.paths()) {
            WorkerEndpoint w = endpoints.get(p);
            if (w != null && !soleHolder(w)) {
                drop(p, w); // ends its grace too
            }
        }
        publish();
    }

    @Override
    public synchronized void remove(String path) {
        WorkerEndpoint w = endpoints.get(path);
        if (w == null || leaving.pending(path)) {
            return;
        }
        if (soleHolder(w) && leaving.enabled()) {
            log.info("expert worker {} left ZooKeeper as the only live holder of some experts: kept {} ms for its "
                    + "node to come back (a session replaced after an outage)", w, leaving.millis());
            leaving.start(path, () -> drop(path, w));
            return;
        }
        drop(path, w);
    }

    @Override
    public synchronized void left(String path) {
        WorkerEndpoint w = endpoints.get(path);
        if (w != null) {
            log.info("expert worker {} is draining: dropped at once", w);
            drop(path, w);
        }
    }

    private synchronized void drop(String path, WorkerEndpoint w) {
        leaving.cancel(path);
        if (endpoints.get(path) != w) {
            return; // replaced meanwhile
        }
        endpoints.remove(path);
        log.info("expert worker {} left", w);
        w.close();
        publish();
    }

    /** Whether some expert of w has no other healthy worker. */
    private boolean soleHolder(WorkerEndpoint w) {
        java.util.List<WorkerEndpoint> others = new java.util.ArrayList<>(endpoints.values());
        others.remove(w);
        return !new RoutingTable(experts, others).missing().equals(new RoutingTable(experts, endpoints.values()).missing());
    }

    private void publish() {
        RoutingTable t = new RoutingTable(experts, endpoints.values());
        table = t;
        String missing = t.missing();
        log.info("routing table: {} worker(s){}", t.workers().size(),
                missing.isEmpty() ? ", all " + experts + " experts covered" : ", missing experts " + missing);
        notifyAll();
    }

    /** Waits until every expert has a live replica; false on timeout. */
    synchronized boolean awaitCoverage(long timeout, TimeUnit unit) throws InterruptedException {
        return WorkerWatch.awaitUntil(this, () -> table.missing().isEmpty(), timeout, unit);
    }

    @Override
    public synchronized void close() {
        prober.shutdownNow();
        leaving.clear();
        watch.close();
        endpoints.values().forEach(WorkerEndpoint::close);
        endpoints.clear();
        table = new RoutingTable(experts, java.util.List.of());
    }
}
