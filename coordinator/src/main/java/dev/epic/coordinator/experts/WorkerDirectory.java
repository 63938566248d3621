package dev.epic.coordinator.experts;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.ExpertRanges;
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
 */
final class WorkerDirectory implements AutoCloseable, WorkerWatch.Listener {
    private static final Logger log = LoggerFactory.getLogger(WorkerDirectory.class);

    private final int experts;
    private final Map<String, WorkerEndpoint> endpoints = new HashMap<>(); // guarded by this
    private volatile RoutingTable table;
    private final WorkerWatch watch;
    private final ScheduledExecutorService prober;

    /**
     * @param probeEvery    how often suspect workers are probed (their failure backoff)
     * @param probeDeadline how long a probe may wait for its answer (a message's deadline)
     */
    WorkerDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, int experts,
            Duration probeEvery, Duration probeDeadline) {
        this.experts = experts;
        this.table = new RoutingTable(experts, java.util.List.of());
        this.watch = new WorkerWatch(zk, ZkLayout.workersPath(cluster), "expert worker", fingerprint.sha256(),
                fingerprint.name(), this);
        this.prober = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("epic-expert-probe").daemon(true).factory());
        long every = Math.max(1, probeEvery.toMillis());
        prober.scheduleWithFixedDelay(() -> {
            long now = System.nanoTime();
            table.workers().forEach(w -> w.probe(now, probeDeadline));
        }, every, every, TimeUnit.MILLISECONDS);
    }

    RoutingTable table() {
        return table;
    }

    /** A worker joined, or re-registered (it revives: its past failures are forgotten). */
    @Override
    public synchronized void upsert(String path, WorkerAnnouncement a) {
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
        publish();
    }

    @Override
    public synchronized void remove(String path) {
        WorkerEndpoint w = endpoints.remove(path);
        if (w != null) {
            log.info("expert worker {} left", w);
            w.close();
            publish();
        }
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
        watch.close();
        endpoints.values().forEach(WorkerEndpoint::close);
        endpoints.clear();
        table = new RoutingTable(experts, java.util.List.of());
    }
}
