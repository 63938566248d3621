package dev.epic.transport;

import dev.epic.proto.WorkerAnnouncement;
import java.util.concurrent.TimeUnit;
import java.util.function.BooleanSupplier;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Watches one ZooKeeper folder of worker announcements (Curator's CuratorCache) for a coordinator:
 * a listener hears of workers joining or changing and of workers leaving. Malformed nodes and
 * workers of another model or protocol version are logged once and reported as left.
 */
public final class WorkerWatch implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WorkerWatch.class);

    /** Called on Curator's event thread, one change at a time. */
    public interface Listener {
        /** A usable worker registered at {@code path}, or changed its announcement. */
        void upsert(String path, WorkerAnnouncement announcement);

        /** The worker at {@code path} left, or may no longer be used. */
        void remove(String path);
    }

    private final String folder;
    private final String kind;
    private final String sha256;
    private final String modelName;
    private final Listener listener;
    private final CuratorCache cache;
    /** Refused nodes by path: who and why (written on Curator's event thread, read by status calls). */
    private final java.util.Map<String, dev.epic.proto.RefusedWorker> refused = new java.util.concurrent.ConcurrentHashMap<>();
    private final String weights;

    /**
     * For a listener that notifies {@code monitor} on every change: waits, holding {@code monitor},
     * until {@code done} holds; false on timeout. Wakes at least every 100 ms, so a condition that
     * also depends on time (a worker's failure backoff) is seen without a notification.
     */
    public static boolean awaitUntil(Object monitor, BooleanSupplier done, long timeout, TimeUnit unit)
            throws InterruptedException {
        long deadline = System.nanoTime() + unit.toNanos(timeout);
        while (!done.getAsBoolean()) {
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                return false;
            }
            TimeUnit.NANOSECONDS.timedWait(monitor, Math.min(left, TimeUnit.MILLISECONDS.toNanos(100)));
        }
        return true;
    }

    /**
     * @param kind     names the workers in logs ("expert worker", "attention worker")
     * @param sha256   fingerprint of the coordinator's model; workers of another are refused
     */
    public WorkerWatch(CuratorFramework zk, String folder, String kind, String sha256, String modelName,
            Listener listener) {
        this(zk, folder, kind, sha256, modelName, null, listener);
    }

    /** @param weights the weight format workers must announce (null: any); see {@link Announcements#refusal} */
    public WorkerWatch(CuratorFramework zk, String folder, String kind, String sha256, String modelName, String weights,
            Listener listener) {
        this.weights = weights;
        this.folder = folder;
        this.kind = kind;
        this.sha256 = sha256;
        this.modelName = modelName;
        this.listener = listener;
        this.cache = CuratorCache.build(zk, folder);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreatesAndChanges((old, node) -> guarded(() -> changed(node), node))
                .forDeletes(node -> guarded(() -> deleted(node), node))
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

    private void changed(ChildData node) {
        String path = node.getPath();
        if (!path.startsWith(folder + "/") || path.indexOf('/', folder.length() + 1) >= 0) {
            return; // the folder itself
        }
        WorkerAnnouncement a;
        try {
            a = Announcements.fromJson(node.getData());
        } catch (IllegalArgumentException e) {
            if (refused.put(path, refusedWorker(path.substring(folder.length() + 1), "", "malformed node: "
                    + e.getMessage())) == null) {
                log.warn("ignoring malformed {} node {}: {}", kind, path, e.getMessage());
            }
            return;
        }
        String reason = Announcements.refusal(a, sha256, modelName, weights);
        if (reason != null) {
            if (refused.put(path, refusedWorker(a.getWorkerId(), a.getAddress(), reason)) == null) {
                log.warn("refusing {} {} at {}: {}", kind, a.getWorkerId(), a.getAddress(), reason);
            }
            listener.remove(path);
            return;
        }
        refused.remove(path);
        listener.upsert(path, a);
    }

    private void deleted(ChildData node) {
        refused.remove(node.getPath());
        listener.remove(node.getPath());
    }

    private dev.epic.proto.RefusedWorker refusedWorker(String id, String address, String reason) {
        return dev.epic.proto.RefusedWorker.newBuilder().setKind(kind).setWorkerId(id).setAddress(address)
                .setReason(reason).build();
    }

    /** The registered workers refused now, with why. */
    public java.util.List<dev.epic.proto.RefusedWorker> refused() {
        return java.util.List.copyOf(refused.values());
    }

    @Override
    public void close() {
        cache.close();
    }
}
