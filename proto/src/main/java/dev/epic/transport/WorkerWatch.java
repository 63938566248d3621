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
 * workers of another model or protocol version are logged once and reported as left. So is a node
 * whose address a later registration took (a worker restarted on the same host:port under another
 * id before the old session expired): one address is one process, and the later node is the live one.
 */
public final class WorkerWatch implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WorkerWatch.class);

    /** Called on Curator's event thread, one change at a time. */
    public interface Listener {
        /** A usable worker registered at {@code path}, or changed its announcement. */
        void upsert(String path, WorkerAnnouncement announcement);

        /** The worker at {@code path} left, or may no longer be used. */
        void remove(String path);

        /** The worker at {@code path} is leaving on purpose (a drain): no grace for its node to come back. */
        default void left(String path) {
            remove(path);
        }
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
    private final String kvCacheDtype;
    private final boolean mtpLayer;
    /** Usable nodes by the address they announce: the one registered there last (Curator's event thread only). */
    private final java.util.Map<String, Registered> byAddress = new java.util.HashMap<>();

    /** A usable node: its path, announcement and creation zxid (later registrations have larger ones). */
    private record Registered(String path, WorkerAnnouncement announcement, long czxid) {}

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
        this(zk, folder, kind, sha256, modelName, weights, null, false, listener);
    }

    /**
     * @param kvCacheDtype how attention workers' caches must store positions (null: any)
     * @param mtpLayer     whether attention workers must run the MTP layer's attention (a coordinator drafting with it)
     */
    public WorkerWatch(CuratorFramework zk, String folder, String kind, String sha256, String modelName, String weights,
            String kvCacheDtype, boolean mtpLayer, Listener listener) {
        this.mtpLayer = mtpLayer;
        this.weights = weights;
        this.kvCacheDtype = kvCacheDtype;
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
        String reason = Announcements.refusal(a, sha256, modelName, weights, kvCacheDtype, mtpLayer);
        if (reason != null) {
            if (refused.put(path, refusedWorker(a.getWorkerId(), a.getAddress(), reason)) == null) {
                log.warn("refusing {} {} at {}: {}", kind, a.getWorkerId(), a.getAddress(), reason);
            }
            listener.remove(path);
            return;
        }
        byAddress.values().removeIf(r -> r.path().equals(path)); // it may have moved, or be leaving
        if (a.getLeaving()) {
            refused.remove(path);
            listener.left(path);
            return;
        }
        Registered mine = new Registered(path, a, node.getStat() == null ? 0 : node.getStat().getCzxid());
        Registered other = byAddress.get(a.getAddress());
        if (other != null && other.czxid() > mine.czxid()) {
            supersede(mine, other);
            byAddress.put(a.getAddress(), other);
            return;
        }
        if (other != null) {
            supersede(other, mine);
        }
        byAddress.put(a.getAddress(), mine);
        refused.remove(path);
        listener.upsert(path, a);
    }

    /** {@code stale}'s address belongs to {@code live}'s process now: stale is refused and left. */
    private void supersede(Registered stale, Registered live) {
        String reason = "stale: " + live.announcement().getWorkerId() + " registered at the same address later";
        if (refused.put(stale.path(), refusedWorker(stale.announcement().getWorkerId(), stale.announcement().getAddress(),
                reason)) == null) {
            log.warn("dropping {} {} at {}: {}", kind, stale.announcement().getWorkerId(),
                    stale.announcement().getAddress(), reason);
        }
        listener.remove(stale.path());
    }

    private void deleted(ChildData node) {
        byAddress.values().removeIf(r -> r.path().equals(node.getPath()));
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
