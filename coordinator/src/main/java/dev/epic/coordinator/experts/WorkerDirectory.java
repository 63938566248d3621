package dev.epic.coordinator.experts;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Announcements;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches {@code /epic/<cluster>/workers} and keeps the {@link RoutingTable}: workers joining,
 * leaving (ephemeral node gone) and re-registering. Workers announcing another model fingerprint
 * or protocol version are logged once and ignored.
 */
final class WorkerDirectory implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WorkerDirectory.class);

    private final String workersPath;
    private final CheckpointFingerprint fingerprint;
    private final int experts;
    private final CuratorCache cache;
    private final Map<String, WorkerEndpoint> endpoints = new HashMap<>(); // guarded by this
    private final Set<String> refused = new HashSet<>(); // guarded by this
    private volatile RoutingTable table;

    WorkerDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, int experts) {
        this.workersPath = ZkLayout.workersPath(cluster);
        this.fingerprint = fingerprint;
        this.experts = experts;
        this.table = new RoutingTable(experts, java.util.List.of());
        this.cache = CuratorCache.build(zk, workersPath);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreatesAndChanges((old, node) -> guarded(() -> upsert(node), node))
                .forDeletes(node -> guarded(() -> remove(node), node))
                .build());
        cache.start();
    }

    /** A listener exception would otherwise vanish inside Curator and the worker silently never join. */
    private static void guarded(Runnable r, ChildData node) {
        try {
            r.run();
        } catch (RuntimeException e) {
            log.error("could not apply ZooKeeper change of {}", node.getPath(), e);
        }
    }

    RoutingTable table() {
        return table;
    }

    /** Re-registered workers revive; also called by RemoteExperts when it waits for coverage. */
    private synchronized void upsert(ChildData node) {
        String path = node.getPath();
        if (!isWorkerNode(path)) {
            return;
        }
        WorkerAnnouncement a;
        try {
            a = Announcements.fromJson(node.getData());
        } catch (IllegalArgumentException e) {
            if (refused.add(path)) {
                log.warn("ignoring malformed worker node {}: {}", path, e.getMessage());
            }
            return;
        }
        String reason = null;
        if (!a.getFingerprint().getSha256().equals(fingerprint.sha256())) {
            reason = "model fingerprint mismatch: worker holds " + a.getFingerprint().getName() + " "
                    + abbrev(a.getFingerprint().getSha256()) + ", this coordinator serves " + fingerprint.name() + " "
                    + fingerprint.shortHash();
        } else if (a.getProtocolVersion() != Protocol.VERSION) {
            reason = "protocol version " + a.getProtocolVersion() + " (this coordinator speaks " + Protocol.VERSION + ")";
        }
        if (reason != null) {
            if (refused.add(path)) {
                log.warn("refusing expert worker {} at {}: {}", a.getWorkerId(), a.getAddress(), reason);
            }
            WorkerEndpoint gone = endpoints.remove(path);
            if (gone != null) {
                gone.close();
                publish();
            }
            return;
        }
        refused.remove(path);
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

    private synchronized void remove(ChildData node) {
        refused.remove(node.getPath());
        WorkerEndpoint w = endpoints.remove(node.getPath());
        if (w != null) {
            log.info("expert worker {} left", w);
            w.close();
            publish();
        }
    }

    private boolean isWorkerNode(String path) {
        return path.startsWith(workersPath + "/") && path.indexOf('/', workersPath.length() + 1) < 0;
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
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        while (!table.missing().isEmpty()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedWait(this, Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)));
        }
        return true;
    }

    private static String abbrev(String sha) {
        return sha.length() > 12 ? sha.substring(0, 12) : sha.isEmpty() ? "(none)" : sha;
    }

    @Override
    public synchronized void close() {
        cache.close();
        endpoints.values().forEach(WorkerEndpoint::close);
        endpoints.clear();
        table = new RoutingTable(experts, java.util.List.of());
    }
}
