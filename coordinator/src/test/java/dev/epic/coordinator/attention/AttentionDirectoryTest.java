package dev.epic.coordinator.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import java.time.Duration;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * An attention worker whose node goes takes no new sequences at once, but keeps the ones it holds for
 * a grace period: the same process re-creating its node (sessions replaced after a ZooKeeper outage)
 * goes on with them. The watch's callbacks are called directly, in the order ZooKeeper delivers them.
 */
class AttentionDirectoryTest {
    private static final Duration GRACE = Duration.ofMillis(400);
    private TestingServer zkServer;
    private CuratorFramework zk;
    private AttentionDirectory directory;

    @BeforeEach
    void start() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        directory = new AttentionDirectory(zk, "grace", new CheckpointFingerprint("m", "0".repeat(64)), GRACE);
    }

    @AfterEach
    void stop() throws Exception {
        directory.close();
        zk.close();
        zkServer.close();
    }

    private static WorkerAnnouncement worker(long pid) {
        return WorkerAnnouncement.newBuilder().setWorkerId("a").setAddress("127.0.0.1:1").setPid(pid).setCapacity(8).build();
    }

    @Test
    void theSameProcessComingBackKeepsItsEndpoint() throws Exception {
        directory.upsert("/a/a", worker(7));
        AttentionEndpoint a = directory.workers().getFirst();
        directory.remove("/a/a");
        assertTrue(directory.workers().isEmpty(), "no new sequences while it is gone");
        assertTrue(a.isLive(System.nanoTime()), "its sequences go on: not closed");
        directory.upsert("/a/a", worker(7));
        assertSame(a, directory.workers().getFirst());
        Thread.sleep(GRACE.toMillis() * 2);
        assertSame(a, directory.workers().getFirst(), "the pending close was cancelled");
        assertTrue(a.isLive(System.nanoTime()));
    }

    @Test
    void aWorkerThatDoesNotComeBackIsClosedAfterTheGraceAndAnotherProcessIsNew() throws Exception {
        directory.upsert("/a/a", worker(7));
        AttentionEndpoint a = directory.workers().getFirst();
        directory.remove("/a/a");
        long until = System.nanoTime() + 10_000_000_000L;
        while (a.isLive(System.nanoTime()) && System.nanoTime() < until) {
            Thread.sleep(20);
        }
        assertFalse(a.isLive(System.nanoTime()), "closed after the grace");
        directory.upsert("/a/a", worker(8)); // a restarted process: new caches
        assertEquals(1, directory.workers().size());
        assertTrue(directory.workers().getFirst() != a);
    }
}
