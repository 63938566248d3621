package dev.epic.coordinator.experts;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import java.time.Duration;
import java.util.stream.IntStream;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * A worker whose ZooKeeper node goes while it alone serves some experts is kept for a grace period
 * (sessions replaced after an outage delete and re-create every node), and leaves at once when others
 * cover its experts. The watch's callbacks are called directly, in the order ZooKeeper delivers them.
 */
class WorkerDirectoryTest {
    private static final int EXPERTS = 64;
    private static final Duration GRACE = Duration.ofMillis(400);
    private TestingServer zkServer;
    private CuratorFramework zk;
    private WorkerDirectory directory;

    @BeforeEach
    void start() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        directory = new WorkerDirectory(zk, "grace", new CheckpointFingerprint("m", "0".repeat(64)), EXPERTS,
                Duration.ofSeconds(1), Duration.ofSeconds(1), GRACE, null);
    }

    @AfterEach
    void stop() throws Exception {
        directory.close();
        zk.close();
        zkServer.close();
    }

    private static WorkerAnnouncement worker(String id, int port) {
        return WorkerAnnouncement.newBuilder().setWorkerId(id).setAddress("127.0.0.1:" + port)
                .addAllExperts(IntStream.range(0, EXPERTS).boxed().toList()).build();
    }

    @Test
    void aSoleHolderWhoseNodeComesBackIsNeverDropped() throws Exception {
        directory.upsert("/w/a", worker("a", 1));
        WorkerEndpoint a = directory.table().workers().getFirst();
        directory.remove("/w/a"); // its session expired during an outage
        assertEquals("", directory.table().missing(), "still covered during the grace");
        assertTrue(a.isHealthy(), "its endpoint (and calls under way) not closed");
        directory.upsert("/w/a", worker("a", 1)); // the new session's node
        assertSame(a, directory.table().workers().getFirst(), "the same endpoint goes on");
        Thread.sleep(GRACE.toMillis() * 2);
        assertSame(a, directory.table().workers().getFirst(), "the pending removal was cancelled");
        assertTrue(a.isHealthy());
    }

    @Test
    void aSoleHolderThatDoesNotComeBackLeavesAfterTheGrace() throws Exception {
        directory.upsert("/w/a", worker("a", 1));
        WorkerEndpoint a = directory.table().workers().getFirst();
        directory.remove("/w/a");
        assertEquals(1, directory.table().workers().size());
        Poll.until("the worker leaves", () -> directory.table().workers().isEmpty());
        assertEquals("0-63", directory.table().missing());
        assertTrue(!a.isHealthy(), "closed once it left");
    }

    /** A sole holder that drains says so first: no grace (requests would be admitted only to fail). */
    @Test
    void aSoleHolderThatDrainsLeavesAtOnce() throws Exception {
        directory.upsert("/w/a", worker("a", 1));
        directory.left("/w/a");
        assertTrue(directory.table().workers().isEmpty());
        assertEquals("0-63", directory.table().missing());
        directory.remove("/w/a"); // its node's deletion comes after
        assertTrue(directory.table().workers().isEmpty());
    }

    @Test
    void aWorkerWithReplicasLeavesAtOnceAndAKeptOneGoesWhenOthersCoverIt() throws Exception {
        directory.upsert("/w/a", worker("a", 1));
        directory.upsert("/w/b", worker("b", 2));
        directory.remove("/w/a");
        assertEquals(1, directory.table().workers().size(), "b covers a's experts: a leaves at once");
        directory.remove("/w/b"); // now the sole holder: kept
        assertEquals(1, directory.table().workers().size());
        directory.upsert("/w/c", worker("c", 3));
        assertEquals(1, directory.table().workers().size(), "c covers b's experts: b goes at once");
        assertEquals("c", directory.table().workers().getFirst().announcement().getWorkerId());
    }
}
