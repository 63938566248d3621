package dev.epic.transport;

import dev.epic.proto.WorkerAnnouncement;
import java.io.IOException;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.data.Stat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A worker's presence in ZooKeeper: an ephemeral node ({@code /epic/<cluster>/workers/<id>} for
 * expert workers, {@code /epic/<cluster>/attention/<id>} for attention workers) with its JSON
 * announcement. Curator's PersistentNode recreates it after a session loss; closing it deletes the
 * node, which is the first step of a drain.
 */
public final class WorkerRegistration implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WorkerRegistration.class);

    private final CuratorFramework zk;
    private final PersistentNode node;
    private final String path;
    private volatile WorkerAnnouncement announcement;

    private WorkerRegistration(CuratorFramework zk, PersistentNode node, String path, WorkerAnnouncement announcement) {
        this.zk = zk;
        this.node = node;
        this.path = path;
        this.announcement = announcement;
    }

    /** A started Curator client, connected within 30 s (else StartupException; the client is closed). */
    public static CuratorFramework connect(String zkConnect, int sessionTimeoutMillis) throws InterruptedException {
        return connect(zkConnect, sessionTimeoutMillis, 30_000);
    }

    /** A started Curator client, connected within {@code waitMillis} (else StartupException; the client is closed). */
    public static CuratorFramework connect(String zkConnect, int sessionTimeoutMillis, long waitMillis)
            throws InterruptedException {
        CuratorFramework zk = CuratorFrameworkFactory.builder()
                .connectString(zkConnect)
                .sessionTimeoutMs(sessionTimeoutMillis)
                .connectionTimeoutMs(Math.min(sessionTimeoutMillis, 15_000))
                .retryPolicy(new ExponentialBackoffRetry(200, 10, 2_000))
                .build();
        zk.start();
        if (!zk.blockUntilConnected((int) waitMillis, TimeUnit.MILLISECONDS)) {
            zk.close();
            throw new StartupException("cannot connect to ZooKeeper at " + zkConnect + " within " + waitMillis + " ms");
        }
        return zk;
    }

    /** Creates {@code folder/<worker id>} holding the announcement, waiting at most timeoutMillis. */
    public static WorkerRegistration register(CuratorFramework zk, String folder, WorkerAnnouncement announcement,
            long timeoutMillis) throws Exception {
        String path = folder + "/" + announcement.getWorkerId();
        removeStale(zk, path, announcement);
        PersistentNode node = new PersistentNode(zk, CreateMode.EPHEMERAL, false, path, Announcements.toJson(announcement));
        node.start();
        if (!node.waitForInitialCreate(timeoutMillis, TimeUnit.MILLISECONDS)) {
            node.close();
            throw new IllegalStateException("could not create " + path + " in ZooKeeper within " + timeoutMillis + " ms");
        }
        log.info("registered {} in ZooKeeper", path);
        return new WorkerRegistration(zk, node, path, announcement);
    }

    /**
     * Clears {@code path} of a node left by a previous incarnation of this worker, which would block
     * ours until its session expires. One announcing this worker's own address is deleted (two live
     * processes cannot own one address), and so is one no session owns. One that another session
     * owns is waited for: a crashed worker's session expires within its timeout (a restart on a new
     * port, say), a live worker's does not, and then the id is taken: IllegalStateException, with
     * that worker left alone.
     */
    private static void removeStale(CuratorFramework zk, String path, WorkerAnnouncement mine) throws Exception {
        // Expiry comes within the session timeout plus a server tick (at most half the minimum timeout).
        long waitMillis = zk.getZookeeperClient().getZooKeeper().getSessionTimeout() * 3L / 2 + 1_000;
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(waitMillis);
        boolean logged = false;
        while (true) {
            Stat stat = new Stat();
            CountDownLatch changed = new CountDownLatch(1);
            byte[] data;
            try {
                data = zk.getData().storingStatIn(stat).usingWatcher((Watcher) e -> changed.countDown()).forPath(path);
            } catch (KeeperException.NoNodeException e) {
                return;
            }
            String holder = holder(data);
            long owner = stat.getEphemeralOwner();
            if (owner == 0 || owner == zk.getZookeeperClient().getZooKeeper().getSessionId()
                    || holder.equals(mine.getAddress())) {
                log.info("removing {} left by a previous run at {}", path, holder);
                try {
                    // Only that version: a node re-created meanwhile (by whoever) is not ours to delete.
                    zk.delete().withVersion(stat.getVersion()).forPath(path);
                } catch (KeeperException.NoNodeException e) {
                    // its session expired meanwhile
                }
                return;
            }
            long left = deadline - System.nanoTime();
            if (left <= 0) {
                throw new IllegalStateException("worker id " + mine.getWorkerId() + " is already registered by "
                        + holder);
            }
            if (!logged) {
                log.info("{} is registered by {}: waiting up to {} ms for its session to expire (a previous run)",
                        path, holder, waitMillis);
                logged = true;
            }
            changed.await(left, TimeUnit.NANOSECONDS);
        }
    }

    private static String holder(byte[] announcement) {
        try {
            return Announcements.fromJson(announcement).getAddress();
        } catch (RuntimeException e) {
            return "(an unreadable announcement)";
        }
    }

    /** Replaces the announcement (the node stays; watchers see it change). */
    public void update(WorkerAnnouncement announcement) throws Exception {
        this.announcement = announcement;
        node.setData(Announcements.toJson(announcement));
    }

    /** How long the leaving mark stands before the node is deleted: watchers read it meanwhile. */
    static final long LEAVING_NOTICE_MILLIS = 250;

    /** How long deregistering waits for ZooKeeper: the node's delete is retried for minutes without it. */
    static final long CLOSE_WAIT_MILLIS = 5_000;

    /**
     * Deletes the node, waiting at most {@link #CLOSE_WAIT_MILLIS}: a worker stopping while ZooKeeper
     * is out of reach must not hang (its pod would be killed at the end of its grace period). The node
     * then goes when the session ends: at once if ZooKeeper comes back as the client closes, else when
     * the session times out.
     */
    @Override
    public void close() {
        Thread deleting = Thread.ofPlatform().name("epic-deregister").daemon(true).start(() -> {
            try {
                // First say it leaves on purpose, so that coordinators drop it at once rather than
                // keep it for a grace period as if its session had been lost.
                zk.setData().forPath(path, Announcements.toJson(announcement.toBuilder().setLeaving(true).build()));
                // Watchers re-read a changed node: give them the time to, before the node goes.
                Thread.sleep(LEAVING_NOTICE_MILLIS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } catch (Exception e) {
                log.debug("could not mark {} as leaving: {}", path, e.toString());
            }
            try {
                node.close();
                log.info("deregistered {}", path);
            } catch (IOException e) {
                log.warn("could not delete {}: {}", path, e.toString());
            }
        });
        try {
            if (!deleting.join(java.time.Duration.ofMillis(CLOSE_WAIT_MILLIS))) {
                log.warn("ZooKeeper did not confirm deleting {} within {} ms: it goes when this worker's session ends",
                        path, CLOSE_WAIT_MILLIS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
