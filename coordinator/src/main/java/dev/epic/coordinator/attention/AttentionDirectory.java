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
 * model. A worker whose node goes (it left, crashed, or lost its ZooKeeper session) is closed and
 * the sequences placed on it are lost: closing its channel ends its stream, and the worker drops
 * that stream's caches too. A node re-created later is a new worker.
 */
final class AttentionDirectory implements AutoCloseable, WorkerWatch.Listener {
    private static final Logger log = LoggerFactory.getLogger(AttentionDirectory.class);

    private final Map<String, AttentionEndpoint> endpoints = new HashMap<>(); // guarded by this
    private volatile List<AttentionEndpoint> workers = List.of();
    private final WorkerWatch watch;

    AttentionDirectory(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint) {
        this.watch = new WorkerWatch(zk, ZkLayout.attentionWorkersPath(cluster), "attention worker",
                fingerprint.sha256(), fingerprint.name(), this);
    }

    /** The registered workers of this model, ordered by path. */
    List<AttentionEndpoint> workers() {
        return workers;
    }

    @Override
    public synchronized void upsert(String path, WorkerAnnouncement a) {
        AttentionEndpoint existing = endpoints.get(path);
        if (existing != null && existing.announcement().getAddress().equals(a.getAddress())
                && existing.announcement().getPid() == a.getPid()) {
            return; // the same process rewrote its node's data: same worker, same caches
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
        AttentionEndpoint w = endpoints.remove(path);
        if (w != null) {
            int lost = w.placed();
            log.info("attention worker {} left{}", w, lost == 0 ? "" : "; its " + lost + " sequence(s) are lost");
            w.close();
            publish();
        }
    }

    private void publish() {
        workers = endpoints.values().stream()
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
        watch.close();
        endpoints.values().forEach(AttentionEndpoint::close);
        endpoints.clear();
        workers = List.of();
    }
}
