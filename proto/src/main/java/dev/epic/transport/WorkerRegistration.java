package dev.epic.transport;

import dev.epic.proto.WorkerAnnouncement;
import java.io.IOException;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.nodes.PersistentNode;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.apache.zookeeper.CreateMode;
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
        // A node left by a previous incarnation of this worker (same id) until its session expires
        // would block ours; it cannot be live, since two processes cannot own one address.
        zk.delete().quietly().forPath(path);
        PersistentNode node = new PersistentNode(zk, CreateMode.EPHEMERAL, false, path, Announcements.toJson(announcement));
        node.start();
        if (!node.waitForInitialCreate(timeoutMillis, TimeUnit.MILLISECONDS)) {
            node.close();
            throw new IllegalStateException("could not create " + path + " in ZooKeeper within " + timeoutMillis + " ms");
        }
        log.info("registered {} in ZooKeeper", path);
        return new WorkerRegistration(node, path);
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
