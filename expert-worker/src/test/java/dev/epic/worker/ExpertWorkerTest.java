package dev.epic.worker;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.HiddenEncoding;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Announcements;
import dev.epic.transport.Placements;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** An expert worker over real gRPC and ZooKeeper: what it refuses before computing, its registration and drain. */
class ExpertWorkerTest {
    private static final Path MODEL = TestData.model("tiny-v3-fp8");
    private static final int[] HOSTED = {1, 5, 6};
    private static TestingServer zkServer;
    private static Checkpoint checkpoint;
    private static CheckpointShard shard;
    private static CheckpointFingerprint fp;
    private static int moeLayer;
    private static int moeLayers;
    private static int hidden;

    @BeforeAll
    static void start() throws Exception {
        zkServer = new TestingServer(true);
        checkpoint = Checkpoint.open(MODEL);
        shard = CheckpointShard.load(checkpoint, HOSTED);
        fp = CheckpointFingerprint.of(MODEL);
        hidden = checkpoint.config().hiddenSize();
        moeLayer = checkpoint.config().firstKDenseReplace();
        moeLayers = checkpoint.config().numHiddenLayers() - moeLayer;
    }

    @AfterAll
    static void stop() throws Exception {
        checkpoint.close();
        zkServer.close();
    }

    private static ExpertWorker.Settings settings(String id, int port, int redundantSlots) {
        return new ExpertWorker.Settings("127.0.0.1", port, zkServer.getConnectString(), "t", id, 64, 4000, 100, 0,
                redundantSlots);
    }

    private static CuratorFramework zk() {
        CuratorFramework zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        return zk;
    }

    /** One row for expert 5, in fp32. */
    private static ExpertRequest.Builder oneRow() {
        return ExpertRequest.newBuilder().setProtocolVersion(Protocol.VERSION).setFingerprint(fp.sha256())
                .setLayer(moeLayer).setRows(1).setHidden(hidden).setEncoding(HiddenEncoding.FP32)
                .setHiddenStates(ByteString.copyFrom(new byte[4 * hidden]))
                .addExpertCounts(1).addExpertIds(5).addGateWeights(0.5f);
    }

    @Test
    void malformedOrOversizedMessagesAreRefusedBeforeAnythingIsComputed() throws Exception {
        try (ExpertWorker w = ExpertWorker.start(shard, fp, moeLayers, settings("w-shapes", 0, 0))) {
            ManagedChannel ch = NettyChannelBuilder.forTarget(w.address()).usePlaintext().build();
            try {
                ExpertResponse ok = DispatchOnce.send(ch, oneRow().build());
                assertEquals(4L * hidden, ok.getOutput().size());

                // A few hundred KB claiming 200k rows (zero experts each, no hidden states): refused
                // for its size, not answered by allocating 200k x hidden floats and doubles first.
                ExpertRequest.Builder many = oneRow().clearExpertCounts().clearExpertIds().clearGateWeights()
                        .setRows(200_000).setHiddenStates(ByteString.EMPTY);
                for (int r = 0; r < 200_000; r++) {
                    many.addExpertCounts(0);
                }
                Status tooMany = DispatchOnce.status(ch, many.build());
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, tooMany.getCode(), tooMany.toString());
                assertTrue(tooMany.getDescription().contains("200000 rows in one message, at most 16384"),
                        tooMany.getDescription());

                // expert_counts are uint32: 2^32 - 1 and 2 sum to 1 in int arithmetic, matching 1 id.
                Status negative = DispatchOnce.status(ch, oneRow().setRows(2)
                        .setHiddenStates(ByteString.copyFrom(new byte[8 * hidden]))
                        .clearExpertCounts().addExpertCounts(-1).addExpertCounts(2).build());
                assertEquals(Status.Code.INVALID_ARGUMENT, negative.getCode(), negative.toString());
                assertTrue(negative.getDescription().contains("expert_counts sum to 4294967297"),
                        negative.getDescription());

                // An unknown answer encoding is refused up front, not found out after computing (INTERNAL).
                Status answerIn = DispatchOnce.status(ch, oneRow().setResponseEncodingValue(99).build());
                assertEquals(Status.Code.INVALID_ARGUMENT, answerIn.getCode(), answerIn.toString());
                assertTrue(answerIn.getDescription().contains("unsupported response encoding"),
                        answerIn.getDescription());

                Status fp64In = DispatchOnce.status(ch, oneRow().setEncoding(HiddenEncoding.FP64)
                        .setHiddenStates(ByteString.copyFrom(new byte[8 * hidden])).build());
                assertEquals(Status.Code.INVALID_ARGUMENT, fp64In.getCode(), fp64In.toString());

                Status shortData = DispatchOnce.status(ch, oneRow().setEncoding(HiddenEncoding.BF16).build());
                assertEquals(Status.Code.INVALID_ARGUMENT, shortData.getCode(), shortData.toString());
                assertTrue(shortData.getDescription().contains("expected " + 2 * hidden), shortData.getDescription());

                // Well beyond the worker's rows in fp32, gRPC itself refuses the message before reading it.
                int rows = 48_000;
                Status huge = DispatchOnce.status(ch, oneRow().setRows(rows)
                        .setHiddenStates(ByteString.copyFrom(new byte[4 * rows * hidden])).build());
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, huge.getCode(), huge.toString());

                assertEquals(4L * hidden, DispatchOnce.send(ch, oneRow().build()).getOutput().size(),
                        "the worker serves on");
            } finally {
                ch.shutdownNow();
            }
        }
    }

    @Test
    void aTakenPortIsOneClearError() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 50, java.net.InetAddress.getByName("127.0.0.1"))) {
            var e = assertThrows(IllegalStateException.class,
                    () -> ExpertWorker.start(shard, fp, moeLayers, settings("w-port", taken.getLocalPort(), 0)));
            assertEquals("port " + taken.getLocalPort() + " on 127.0.0.1 is in use", e.getMessage());
        }
    }

    @Test
    void anIdRegisteredByAnotherLiveWorkerIsRefusedButALeftoverOfThisOneIsReplaced() throws Exception {
        String path = ZkLayout.workersPath("t") + "/w-dup";
        int port;
        try (ServerSocket free = new ServerSocket(0)) {
            port = free.getLocalPort();
        }
        try (CuratorFramework previous = zk()) {
            // A previous run at the same address, whose session has not expired yet.
            previous.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(path,
                    Announcements.toJson(WorkerAnnouncement.newBuilder().setWorkerId("w-dup")
                            .setAddress("127.0.0.1:" + port).addExperts(1)
                            .setFingerprint(dev.epic.proto.ModelFingerprint.newBuilder().setSha256(fp.sha256()))
                            .build()));
            try (ExpertWorker w = ExpertWorker.start(shard, fp, moeLayers, settings("w-dup", port, 0))) {
                assertEquals("127.0.0.1:" + port, w.address());
                WorkerAnnouncement now = Announcements.fromJson(previous.getData().forPath(path));
                assertEquals(ProcessHandle.current().pid(), now.getPid(), "the leftover was replaced");

                // Another process given the same id: refused once the live worker's session has not
                // expired within a session timeout, and the live worker's node stays.
                var e = assertThrows(IllegalStateException.class,
                        () -> ExpertWorker.start(shard, fp, moeLayers, settings("w-dup", 0, 0)));
                assertEquals("worker id w-dup is already registered by 127.0.0.1:" + port, e.getMessage());
                assertEquals(now, Announcements.fromJson(previous.getData().forPath(path)));
            }
        }
    }

    /** A crashed worker restarted under its id on a new port: its old node goes when its session expires. */
    @Test
    void anIdHeldByAnEndingSessionIsTakenOnceThatSessionIsGone() throws Exception {
        String path = ZkLayout.workersPath("t") + "/w-back";
        CuratorFramework crashed = zk();
        crashed.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL).forPath(path,
                Announcements.toJson(WorkerAnnouncement.newBuilder().setWorkerId("w-back").setAddress("127.0.0.1:1")
                        .addExperts(1).setFingerprint(dev.epic.proto.ModelFingerprint.newBuilder().setSha256(fp.sha256()))
                        .build()));
        var starting = java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            try {
                return ExpertWorker.start(shard, fp, moeLayers, settings("w-back", 0, 0));
            } catch (Exception e) {
                throw new java.util.concurrent.CompletionException(e);
            }
        });
        crashed.close(); // its session ends, and its ephemeral node with it
        try (ExpertWorker w = starting.get(60, TimeUnit.SECONDS); CuratorFramework zk = zk()) {
            assertEquals(w.address(), Announcements.fromJson(zk.getData().forPath(path)).getAddress());
        }
    }

    @Test
    void aDrainDeregistersWithoutWaitingForAPlacementBeingLoaded() throws Exception {
        CountDownLatch loading = new CountDownLatch(1);
        CountDownLatch release = new CountDownLatch(1);
        ExpertShard slow = new ExpertShard() {
            public int hiddenSize() { return shard.hiddenSize(); }
            public int expertCount() { return shard.expertCount(); }
            public int[] experts() { return shard.experts(); }
            public boolean isMoeLayer(int layer) { return shard.isMoeLayer(layer); }
            public boolean hosts(int layer, int expert) { return shard.hosts(layer, expert); }
            public void apply(int layer, int expert, float[] x, int batch, float[] y) { shard.apply(layer, expert, x, batch, y); }
            public long residentBytes() { return shard.residentBytes(); }

            @Override
            public void redundant(Map<Integer, int[]> extras) {
                loading.countDown();
                try {
                    release.await(); // a placement whose weights take long to load
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
        };
        String path = ZkLayout.workersPath("t") + "/w-drain";
        try (CuratorFramework zk = zk()) {
            ExpertWorker w = ExpertWorker.start(slow, fp, moeLayers, settings("w-drain", 0, 1));
            Thread closing = new Thread(w::close, "closing");
            try {
                zk.create().orSetData().creatingParentsIfNeeded().forPath(ZkLayout.placementPath("t"),
                        Placements.toJson(new Placements.Placement(1, Map.of("w-drain", Map.of(moeLayer, new int[] {9})))));
                assertTrue(loading.await(20, TimeUnit.SECONDS), "the worker follows the placement");
                closing.start();
                for (int i = 0; i < 200 && zk.checkExists().forPath(path) != null; i++) {
                    Thread.sleep(50);
                }
                assertNull(zk.checkExists().forPath(path), "deregistered while the placement still loads");
            } finally {
                release.countDown();
                if (closing.getState() == Thread.State.NEW) {
                    w.close();
                }
                closing.join();
            }
        }
    }
}
