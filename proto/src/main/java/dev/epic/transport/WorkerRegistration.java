package dev.epic.transport;

import dev.epic.proto.WorkerAnnouncement;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
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

    private final PersistentNode node;
    private final String path;

    private WorkerRegistration(PersistentNode node, String path) {
        this.node = node;
        this.path = path;
    }

    /** A started Curator client, connected within 30 s (else IllegalStateException; the client is closed). */
    public static CuratorFramework connect(String zkConnect, int sessionTimeoutMillis) throws InterruptedException {
        CuratorFramework zk = CuratorFrameworkFactory.builder()
                .connectString(zkConnect)
                .sessionTimeoutMs(sessionTimeoutMillis)
                .connectionTimeoutMs(Math.min(sessionTimeoutMillis, 15_000))
                .retryPolicy(new ExponentialBackoffRetry(200, 10, 2_000))
                .build();
        zk.start();
        if (!zk.blockUntilConnected(30, TimeUnit.SECONDS)) {
            zk.close();
            throw new IllegalStateException("cannot connect to ZooKeeper at " + zkConnect + " within 30 s");
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
        return new WorkerRegistration(node, path);
    }

    /**
     * Deletes a node left at {@code path} by a previous incarnation of this worker, which would block
     * ours until its session expires: one announcing this worker's own address (two live processes
     * cannot own one address), or one no other live session owns. A node another live worker owns
     * means the id is taken: IllegalStateException, and that worker is left alone.
     */
    private static void removeStale(CuratorFramework zk, String path, WorkerAnnouncement mine) throws Exception {
        Stat stat = new Stat();
        byte[] data;
        try {
            data = zk.getData().storingStatIn(stat).forPath(path);
        } catch (KeeperException.NoNodeException e) {
            return;
        }
        String holder;
        try {
            holder = Announcements.fromJson(data).getAddress();
        } catch (RuntimeException e) {
            holder = "(an unreadable announcement)";
        }
        long owner = stat.getEphemeralOwner();
        boolean ownedByOther = owner != 0 && owner != zk.getZookeeperClient().getZooKeeper().getSessionId();
        if (ownedByOther && !holder.equals(mine.getAddress())) {
            throw new IllegalStateException("worker id " + mine.getWorkerId() + " is already registered by " + holder);
        }
        log.info("removing {} left by a previous run at {}", path, holder);
        // Only that version: a node re-created meanwhile (by whoever) is not ours to delete.
        try {
            zk.delete().withVersion(stat.getVersion()).forPath(path);
        } catch (KeeperException.NoNodeException e) {
            // its session expired meanwhile
        }
    }

    /** Replaces the announcement (the node stays; watchers see it change). */
    public void update(WorkerAnnouncement announcement) throws Exception {
        node.setData(Announcements.toJson(announcement));
    }

    @Override
    public void close() {
        try {
            node.close();
            log.info("deregistered {}", path);
        } catch (IOException e) {
            log.warn("could not delete {}: {}", path, e.toString());
        }
    }
}
