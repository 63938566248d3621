package dev.epic.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.TestData;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.proto.AttendRequest;
import dev.epic.proto.AttendResponse;
import dev.epic.proto.AttentionServiceGrpc;
import dev.epic.proto.AttentionWorkerInfo;
import dev.epic.proto.InfoRequest;
import dev.epic.proto.ReleaseRequest;
import dev.epic.proto.SequenceSegment;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Announcements;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import com.google.protobuf.ByteString;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.StreamObserver;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** An attention worker over real gRPC and ZooKeeper: registration, info, and what it refuses and why. */
class AttentionServiceTest {
    private static final Path MODEL = TestData.model("tiny-v3");
    private static TestingServer zkServer;
    private static Checkpoint checkpoint;
    private static AttentionWorker worker;
    private static ManagedChannel channel;
    private static String sha;
    private static int hidden;

    @BeforeAll
    static void start() throws Exception {
        zkServer = new TestingServer(true);
        checkpoint = Checkpoint.open(MODEL);
        hidden = checkpoint.config().hiddenSize();
        sha = CheckpointFingerprint.of(MODEL).sha256();
        worker = AttentionWorker.start(AttentionLayers.load(checkpoint.config(), checkpoint), CheckpointFingerprint.of(MODEL),
                new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), "t", "a-test", 2, 4000, 100));
        channel = NettyChannelBuilder.forTarget(worker.address()).usePlaintext().build();
    }

    @AfterAll
    static void stop() throws Exception {
        channel.shutdownNow();
        worker.close();
        checkpoint.close();
        zkServer.close();
    }

    /** One Attend message on a fresh stream: its response, or the status that ended the stream. */
    private static Object attend(AttendRequest req) throws Exception {
        CompletableFuture<Object> f = new CompletableFuture<>();
        StreamObserver<AttendRequest> out = AttentionServiceGrpc.newStub(channel).attend(new StreamObserver<>() {
            @Override
            public void onNext(AttendResponse r) {
                f.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                f.complete(Status.fromThrowable(t));
            }

            @Override
            public void onCompleted() {}
        });
        out.onNext(req);
        Object r = f.get(20, TimeUnit.SECONDS);
        out.onCompleted();
        return r;
    }

    private static AttendRequest.Builder request(int layer, long... idStartLength) {
        AttendRequest.Builder b = AttendRequest.newBuilder().setProtocolVersion(Protocol.VERSION).setFingerprint(sha)
                .setLayer(layer).setHidden(hidden);
        int rows = 0;
        for (int i = 0; i < idStartLength.length; i += 3) {
            b.addSegments(SequenceSegment.newBuilder().setCacheId(idStartLength[i]).setStart((int) idStartLength[i + 1])
                    .setLength((int) idStartLength[i + 2]));
            rows += (int) idStartLength[i + 2];
        }
        return b.setHiddenStates(ByteString.copyFrom(new byte[4 * rows * hidden]));
    }

    private static Status status(Object answer) {
        return answer instanceof Status s ? s : Status.OK;
    }

    @Test
    void registersWithItsCapacityAndDescribesItself() throws Exception {
        try (CuratorFramework zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100))) {
            zk.start();
            WorkerAnnouncement a = Announcements.fromJson(
                    zk.getData().forPath(ZkLayout.attentionWorkersPath("t") + "/a-test"));
            assertEquals(worker.address(), a.getAddress());
            assertEquals(2, a.getCapacity());
            assertEquals(sha, a.getFingerprint().getSha256());
        }
        AttentionWorkerInfo info = AttentionServiceGrpc.newBlockingStub(channel).info(InfoRequest.getDefaultInstance());
        assertEquals(checkpoint.config().numHiddenLayers(), info.getLayers());
        assertEquals(hidden, info.getHiddenSize());
        assertEquals(2, info.getMaxSequences());
    }

    @Test
    void answersOneRowPerInputRowAndReleases() throws Exception {
        AttendResponse r = (AttendResponse) attend(request(0, 101, 0, 3, 102, 0, 2).build());
        assertEquals(5, r.getRows());
        assertEquals(4L * 5 * hidden, r.getOutput().size());
        assertEquals(2, worker.cachedSequences());
        AttentionServiceGrpc.newBlockingStub(channel).release(ReleaseRequest.newBuilder().addCacheIds(101).addCacheIds(102).build());
        assertEquals(0, worker.cachedSequences());
    }

    @Test
    void refusesWhatItCannotServe() throws Exception {
        Status other = status(attend(request(0, 1, 0, 1).setFingerprint("0".repeat(64)).build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, other.getCode());
        assertTrue(other.getDescription().contains("fingerprint mismatch"), other.getDescription());

        Status unknown = status(attend(request(0, 77, 5, 1).build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, unknown.getCode());
        assertTrue(unknown.getDescription().contains("not held here"), unknown.getDescription());

        Status ahead = status(attend(request(1, 78, 0, 1).build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, ahead.getCode(), "a cache is created by layer 0 only");

        Status full = status(attend(request(0, 201, 0, 1, 202, 0, 1, 203, 0, 1).build()));
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, full.getCode());
        assertTrue(full.getDescription().contains("maximum of 2 sequences"), full.getDescription());
        AttentionServiceGrpc.newBlockingStub(channel).release(ReleaseRequest.newBuilder().addCacheIds(201).addCacheIds(202).build());

        Status shortData = status(attend(request(0, 301, 0, 2).setHiddenStates(ByteString.copyFrom(new byte[8])).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, shortData.getCode());

        Status layer = status(attend(request(99, 301, 0, 1).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, layer.getCode());
        assertEquals(0, worker.cachedSequences(), "malformed messages create no cache");
    }
}
