package dev.epic.coordinator.experts;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Announcements;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import io.grpc.Status;
import java.time.Duration;
import java.util.stream.IntStream;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Membership through a real ZooKeeper: join, leave, refusal of other models, coverage. */
class RoutingTableTest {
    private static final CheckpointFingerprint FP = new CheckpointFingerprint("m", "a".repeat(64));
    private static TestingServer zkServer;
    private static CuratorFramework zk;

    @BeforeAll
    static void zk() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        zk.blockUntilConnected();
    }

    @AfterAll
    static void stop() throws Exception {
        zk.close();
        zkServer.close();
    }

    private static void announce(String cluster, String id, String sha, int from, int to) throws Exception {
        announce(cluster, id, "127.0.0.1:" + (20_000 + Math.floorMod(id.hashCode(), 20_000)), sha, from, to);
    }

    private static void announce(String cluster, String id, String address, String sha, int from, int to)
            throws Exception {
        WorkerAnnouncement.Builder a = WorkerAnnouncement.newBuilder().setWorkerId(id).setAddress(address)
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256(sha))
                .setCapacity(8).setPid(1).setProtocolVersion(Protocol.VERSION);
        IntStream.range(from, to).forEach(a::addExperts);
        zk.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL)
                .forPath(ZkLayout.workerPath(cluster, id), Announcements.toJson(a.build()));
    }

    @Test
    void tracksJoinLeaveAndCoverage() throws Exception {
        String cluster = "join-leave";
        try (RemoteExperts re = RemoteExperts.create(zk, cluster, FP, 16, 4, RemoteExperts.Options.defaults(), null)) {
            assertEquals("0-15", re.missingExperts());
            assertFalse(re.awaitCoverage(Duration.ofMillis(50)));
            announce(cluster, "w0", FP.sha256(), 0, 8);
            Poll.until("w0 joins", () -> re.workers().size() == 1);
            assertEquals("8-15", re.missingExperts());
            var e = assertThrows(ExpertsUnavailableException.class,
                    () -> re.forward(1, new float[4], 1, new int[] {3, 9}, new float[] {0.5f, 0.5f}, 2, new float[4]));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
            assertTrue(e.getStatus().getDescription().contains("experts 9 "), e.getStatus().getDescription());

            announce(cluster, "w1", FP.sha256(), 8, 16); // joins late
            assertTrue(re.awaitCoverage(Duration.ofSeconds(20)));
            assertEquals("", re.missingExperts());
            announce(cluster, "w1b", FP.sha256(), 8, 16); // a replica
            Poll.until("replica joins", () -> re.workers().size() == 3);

            zk.delete().forPath(ZkLayout.workerPath(cluster, "w1"));
            Poll.until("w1 leaves", () -> re.workers().size() == 2);
            assertEquals("", re.missingExperts(), "the replica still covers 8-15");
            zk.delete().forPath(ZkLayout.workerPath(cluster, "w1b"));
            Poll.until("w1b leaves", () -> re.workers().size() == 1);
            assertEquals("8-15", re.missingExperts());
        }
    }

    @Test
    void refusesWorkersOfAnotherModelAndMalformedNodes() throws Exception {
        String cluster = "refuse";
        try (RemoteExperts re = RemoteExperts.create(zk, cluster, FP, 16, 4, RemoteExperts.Options.defaults(), null)) {
            announce(cluster, "other-model", "b".repeat(64), 0, 16);
            zk.create().creatingParentsIfNeeded().forPath(ZkLayout.workerPath(cluster, "garbage"), "{".getBytes());
            announce(cluster, "good", FP.sha256(), 0, 4);
            Poll.until("good joins", () -> re.workers().size() == 1);
            assertTrue(re.workers().getFirst().startsWith("good@"), re.workers().toString());
            assertEquals("4-15", re.missingExperts());
            assertNotNull(re.stats().snapshot());
        }
    }

    /**
     * A worker restarted on the same host:port under another id while its old node lives on (its
     * session not yet expired): the later node is the worker there; the old one is refused as stale,
     * whichever of the two the coordinator hears of first.
     */
    @Test
    void aLaterRegistrationAtTheSameAddressSupersedesTheOld() throws Exception {
        String cluster = "same-address";
        announce(cluster, "other", FP.sha256(), 0, 16);
        try (RemoteExperts re = RemoteExperts.create(zk, cluster, FP, 16, 4, RemoteExperts.Options.defaults(), null)) {
            announce(cluster, "old", "127.0.0.1:7", FP.sha256(), 0, 8);
            Poll.until("old joins", () -> re.workers().size() == 2);
            announce(cluster, "new", "127.0.0.1:7", FP.sha256(), 8, 16);
            Poll.until("old dropped", () -> re.workers().size() == 2 && re.workers().stream().noneMatch(w -> w.startsWith("old@")));
            assertTrue(re.workers().stream().anyMatch(w -> w.startsWith("new@")), re.workers().toString());
            assertEquals(1, re.refusedWorkers().size());
            assertTrue(re.refusedWorkers().getFirst().getReason().contains("new registered at the same address later"),
                    re.refusedWorkers().toString());
        }
        // A coordinator that starts with both nodes there keeps the later one too.
        try (RemoteExperts re = RemoteExperts.create(zk, cluster, FP, 16, 4, RemoteExperts.Options.defaults(), null)) {
            Poll.until("two workers", () -> re.workers().size() == 2);
            assertTrue(re.workers().stream().noneMatch(w -> w.startsWith("old@")), re.workers().toString());
            zk.delete().forPath(ZkLayout.workerPath(cluster, "new")); // the live one stops: the stale one stays out
            Poll.until("new leaves", () -> re.workers().size() == 1);
            assertTrue(re.workers().getFirst().startsWith("other@"), re.workers().toString());
        }
    }

    @Test
    void outOfRangeExpertIdIsRejected() throws Exception {
        try (RemoteExperts re = RemoteExperts.create(zk, "range", FP, 16, 4, RemoteExperts.Options.defaults(), null)) {
            assertThrows(IllegalArgumentException.class,
                    () -> re.forward(1, new float[4], 1, new int[] {16}, new float[] {1f}, 1, new float[4]));
        }
    }
}
