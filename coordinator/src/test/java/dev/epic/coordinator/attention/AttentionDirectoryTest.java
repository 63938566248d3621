package dev.epic.coordinator.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCacheDtype;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.RefusedWorker;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Announcements;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
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
    private static final CheckpointFingerprint FINGERPRINT = new CheckpointFingerprint("m", "0".repeat(64));
    private TestingServer zkServer;
    private CuratorFramework zk;
    private AttentionDirectory directory;

    @BeforeEach
    void start() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        directory = new AttentionDirectory(zk, "grace", FINGERPRINT, null, KvCacheDtype.FP32, GRACE);
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

    /** Attention weights in another format give other logits: such workers are refused, and say why. */
    @Test
    void workersWithOtherWeightsAreRefusedWithTheReason() throws Exception {
        try (AttentionDirectory auto = new AttentionDirectory(zk, "formats", FINGERPRINT, "auto", KvCacheDtype.FP32, GRACE)) {
            String folder = ZkLayout.attentionWorkersPath("formats");
            register(folder + "/a-q4", "a-q4", "127.0.0.1:2", "q4");
            register(folder + "/a-auto", "a-auto", "127.0.0.1:3", "auto");
            register(folder + "/a-old", "a-old", "127.0.0.1:4", ""); // announces none: accepted
            assertTrue(auto.await(2, 10, TimeUnit.SECONDS));
            long until = System.nanoTime() + 10_000_000_000L;
            while (auto.refused().isEmpty() && System.nanoTime() < until) {
                Thread.sleep(20);
            }
            assertEquals(List.of("127.0.0.1:3", "127.0.0.1:4"),
                    auto.workers().stream().map(w -> w.announcement().getAddress()).toList());
            assertEquals(1, auto.refused().size());
            RefusedWorker r = auto.refused().getFirst();
            assertEquals("a-q4", r.getWorkerId());
            assertTrue(r.getReason().contains("its weights are q4 but this coordinator's are auto"), r.getReason());
        }
    }

    /** Caches stored in another dtype give other logits too: a bf16 coordinator takes only bf16 workers. */
    @Test
    void workersWhoseCachesStoreAnotherDtypeAreRefused() throws Exception {
        try (AttentionDirectory bf16 = new AttentionDirectory(zk, "kv", FINGERPRINT, null, KvCacheDtype.BF16, GRACE)) {
            String folder = ZkLayout.attentionWorkersPath("kv");
            register(folder + "/a-fp32", "a-fp32", "127.0.0.1:2", "auto", "fp32");
            register(folder + "/a-bf16", "a-bf16", "127.0.0.1:3", "auto", "bf16");
            register(folder + "/a-old", "a-old", "127.0.0.1:4", "auto", ""); // announces none: fp32
            assertTrue(bf16.await(1, 10, TimeUnit.SECONDS));
            long until = System.nanoTime() + 10_000_000_000L;
            while (bf16.refused().size() < 2 && System.nanoTime() < until) {
                Thread.sleep(20);
            }
            assertEquals(List.of("127.0.0.1:3"), bf16.workers().stream().map(w -> w.announcement().getAddress()).toList());
            assertEquals(List.of("a-fp32", "a-old"), bf16.refused().stream().map(RefusedWorker::getWorkerId).sorted().toList());
            for (RefusedWorker r : bf16.refused()) {
                assertTrue(r.getReason().contains("its KV caches store fp32 but this coordinator's store bf16"), r.getReason());
            }
        }
    }

    /** A coordinator drafting with the MTP layer takes only workers that run its attention; others take both. */
    @Test
    void aCoordinatorDraftingWithTheMtpLayerTakesOnlyWorkersRunningIt() throws Exception {
        String folder = ZkLayout.attentionWorkersPath("mtp");
        register(folder + "/a-mtp", "a-mtp", "127.0.0.1:2", "auto", "", true);
        register(folder + "/a-none", "a-none", "127.0.0.1:3", "auto", "", false);
        try (AttentionDirectory mtp = new AttentionDirectory(zk, "mtp", FINGERPRINT, null, KvCacheDtype.FP32, true, GRACE);
                AttentionDirectory plain = new AttentionDirectory(zk, "mtp", FINGERPRINT, null, KvCacheDtype.FP32, GRACE)) {
            assertTrue(mtp.await(1, 10, TimeUnit.SECONDS));
            assertTrue(plain.await(2, 10, TimeUnit.SECONDS));
            long until = System.nanoTime() + 10_000_000_000L;
            while (mtp.refused().isEmpty() && System.nanoTime() < until) {
                Thread.sleep(20);
            }
            assertEquals(List.of("127.0.0.1:2"), mtp.workers().stream().map(w -> w.announcement().getAddress()).toList());
            RefusedWorker r = mtp.refused().getFirst();
            assertEquals("a-none", r.getWorkerId());
            assertTrue(r.getReason().contains("does not run the MTP layer's attention"), r.getReason());
            assertTrue(plain.refused().isEmpty());
        }
    }

    private void register(String path, String id, String address, String weights) throws Exception {
        register(path, id, address, weights, "");
    }

    private void register(String path, String id, String address, String weights, String kvCacheDtype) throws Exception {
        register(path, id, address, weights, kvCacheDtype, false);
    }

    private void register(String path, String id, String address, String weights, String kvCacheDtype, boolean mtpLayer)
            throws Exception {
        WorkerAnnouncement a = WorkerAnnouncement.newBuilder().setWorkerId(id).setAddress(address).setPid(1)
                .setCapacity(8).setProtocolVersion(Protocol.VERSION).setWeights(weights).setKvCacheDtype(kvCacheDtype)
                .setMtpLayer(mtpLayer)
                .setFingerprint(ModelFingerprint.newBuilder().setName(FINGERPRINT.name())
                        .setSha256(FINGERPRINT.sha256()))
                .build();
        zk.create().creatingParentsIfNeeded().forPath(path, Announcements.toJson(a));
    }
}
