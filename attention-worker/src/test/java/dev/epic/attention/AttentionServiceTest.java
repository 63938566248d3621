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
import java.util.List;
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
    private static int metricsPort;

    @BeforeAll
    static void start() throws Exception {
        zkServer = new TestingServer(true);
        checkpoint = Checkpoint.open(MODEL);
        hidden = checkpoint.config().hiddenSize();
        sha = CheckpointFingerprint.of(MODEL).sha256();
        worker = AttentionWorker.start(AttentionLayers.load(checkpoint.config(), checkpoint), CheckpointFingerprint.of(MODEL),
                new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), "t", "a-test", 2, 4000, 100, -1)
                        .withWeights("auto"));
        metricsPort = worker.metricsPort();
        channel = NettyChannelBuilder.forTarget(worker.address()).usePlaintext().build();
    }

    @AfterAll
    static void stop() throws Exception {
        channel.shutdownNow();
        worker.close();
        checkpoint.close();
        zkServer.close();
    }

    /** A client Attend stream: each send returns the response, or the status that ended the stream. */
    private static final class Stream implements AutoCloseable {
        private final java.util.concurrent.BlockingQueue<Object> answers = new java.util.concurrent.LinkedBlockingQueue<>();
        private final StreamObserver<AttendRequest> out;

        Stream() {
            this(channel);
        }

        Stream(ManagedChannel ch) {
            out = AttentionServiceGrpc.newStub(ch).attend(new StreamObserver<>() {
                @Override
                public void onNext(AttendResponse r) {
                    answers.add(r);
                }

                @Override
                public void onError(Throwable t) {
                    answers.add(Status.fromThrowable(t));
                }

                @Override
                public void onCompleted() {}
            });
        }

        Object send(AttendRequest req) throws Exception {
            out.onNext(req);
            Object r = answers.poll(20, TimeUnit.SECONDS);
            assertTrue(r != null, "no answer within 20 s");
            return r;
        }

        @Override
        public void close() {
            out.onCompleted();
        }
    }

    /** One Attend message on a fresh stream, closed after its answer. */
    private static Object attend(AttendRequest req) throws Exception {
        try (Stream s = new Stream()) {
            return s.send(req);
        }
    }

    private static void awaitCached(int n) throws InterruptedException {
        for (int i = 0; i < 200 && worker.cachedSequences() != n; i++) {
            Thread.sleep(10);
        }
        assertEquals(n, worker.cachedSequences());
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
            assertEquals("auto", a.getWeights(), "coordinators with other --weights refuse it");
            assertEquals(AttentionWorker.defaultPrefixCacheBytes(), a.getPrefixCacheBytes(), "what coordinators keep here");
            assertTrue(a.getMtpLayer(), "tiny-v3 has an MTP layer: coordinators drafting with it take this worker");
        }
        AttentionWorkerInfo info = AttentionServiceGrpc.newBlockingStub(channel).info(InfoRequest.getDefaultInstance());
        assertEquals(checkpoint.config().numHiddenLayers(), info.getLayers());
        assertEquals(hidden, info.getHiddenSize());
        assertEquals(2, info.getMaxSequences());
        assertTrue(info.getMtpLayer());
    }

    @Test
    void cachesLiveUntilReleasedOrTheirStreamEnds() throws Exception {
        try (Stream stream = new Stream()) {
            AttendResponse r = (AttendResponse) stream.send(request(0, 101, 0, 3, 102, 0, 2).build());
            assertEquals(5, r.getRows());
            assertEquals(4L * 5 * hidden, r.getOutput().size());
            assertEquals(2, worker.cachedSequences());
            AttendResponse next = (AttendResponse) stream.send(request(1, 101, 0, 3).build());
            assertEquals(3, next.getRows());
            AttentionServiceGrpc.newBlockingStub(channel).release(ReleaseRequest.newBuilder().addCacheIds(101).build());
            assertEquals(1, worker.cachedSequences());
        }
        awaitCached(0); // 102 went with its stream
    }

    @Test
    void servesItsMetrics() throws Exception {
        try (Stream stream = new Stream()) {
            stream.send(request(0, 401, 0, 2).build());
            String text = java.net.http.HttpClient.newHttpClient().send(java.net.http.HttpRequest.newBuilder(
                    java.net.URI.create("http://127.0.0.1:" + metricsPort + "/metrics")).build(),
                    java.net.http.HttpResponse.BodyHandlers.ofString()).body();
            assertTrue(text.contains("epic_attention_cached_sequences 1.0"), text);
            assertTrue(text.contains("epic_attention_max_sequences 2.0"), text);
            assertTrue(text.contains("epic_worker_message_seconds_count{service=\"attention\"}"), text);
            assertTrue(text.contains("grpc_server_processing_duration_seconds"), text);
            assertTrue(text.contains("jvm_memory_used_bytes"), text);
        }
        awaitCached(0);
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

        Status partly = status(attend(request(0, 79, 0, 1, 80, 4, 1).build()));
        assertEquals(Status.Code.FAILED_PRECONDITION, partly.getCode());
        assertEquals(0, worker.cachedSequences(), "a refused message creates none of its caches");

        Status shortData = status(attend(request(0, 301, 0, 2).setHiddenStates(ByteString.copyFrom(new byte[8])).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, shortData.getCode());

        Status layer = status(attend(request(99, 301, 0, 1).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, layer.getCode());
        assertEquals(0, worker.cachedSequences(), "malformed messages create no cache");
    }

    @Test
    void aFullWorkerRefusesOnlyTheNewSequencesAndKeepsTheStream() throws Exception {
        try (Stream stream = new Stream()) {
            stream.send(request(0, 201, 0, 1).build());
            AttendResponse full = (AttendResponse) stream.send(request(0, 202, 0, 1, 203, 0, 1).build());
            assertEquals(List.of(202L, 203L), full.getRefusedCacheIdsList(),
                    "one place was left, but a message's new caches are taken all or none");
            assertTrue(full.getRefusal().contains("maximum of 2 sequences"), full.getRefusal());
            assertEquals(0, full.getRows());
            assertEquals(1, worker.cachedSequences(), "nothing was created for the refused message");
            // The stream is still open and the held sequence goes on.
            AttendResponse goesOn = (AttendResponse) stream.send(request(1, 201, 0, 1).build());
            assertEquals(1, goesOn.getRows());
        }
        awaitCached(0);
    }
    @Test
    void positionsAreCheckedAtEveryLayerAndUint32FieldsCannotGoNegative() throws Exception {
        try (Stream stream = new Stream()) {
            assertEquals(2, ((AttendResponse) stream.send(request(0, 501, 0, 2).build())).getRows());
            // Layer 1 of the same step starting beyond what the cache holds (0 positions so far).
            Status beyond = status(stream.send(request(1, 501, 3, 2).build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, beyond.getCode(), beyond.toString());
            assertTrue(beyond.getDescription().contains("holds 0 positions; a step cannot start at 3"),
                    beyond.getDescription());
        }
        awaitCached(0);

        // uint32 length 2^32 - 1 beside a length of 2: 1 row in int arithmetic, and 1 row of data sent.
        AttendRequest negativeLength = request(0, 502, 0, 1).clearSegments()
                .addSegments(SequenceSegment.newBuilder().setCacheId(502).setStart(0).setLength(-1))
                .addSegments(SequenceSegment.newBuilder().setCacheId(503).setStart(0).setLength(2)).build();
        Status length = status(attend(negativeLength));
        assertEquals(Status.Code.INVALID_ARGUMENT, length.getCode(), length.toString());
        assertTrue(length.getDescription().contains("with 4294967295 positions"), length.getDescription());

        try (Stream stream = new Stream()) {
            stream.send(request(0, 504, 0, 1).build());
            Status start = status(stream.send(request(1, 504, -1, 1).build()));
            assertEquals(Status.Code.INVALID_ARGUMENT, start.getCode(), start.toString());
        }
        Status layer = status(attend(request(-1, 505, 0, 1).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, layer.getCode(), layer.toString());
        awaitCached(0);
    }

    /** A second worker, of up to 8 sequences in {@code kvCacheBytes} of KV cache. */
    private AttentionWorker budgeted(String id, long kvCacheBytes) throws Exception {
        return AttentionWorker.start(AttentionLayers.load(checkpoint.config(), checkpoint), CheckpointFingerprint.of(MODEL),
                new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), "t", id, 8, 4000, 100, 0,
                        kvCacheBytes));
    }

    @Test
    void theKvBudgetRefusesNewSequencesAndGrowthBeyondIt() throws Exception {
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(checkpoint.config());
        // Room for two caches of 16 positions (what a new cache starts with), not a third or more.
        try (AttentionWorker small = budgeted("a-small", 32 * perPosition)) {
            ManagedChannel ch = NettyChannelBuilder.forTarget(small.address()).usePlaintext().build();
            try (Stream stream = new Stream(ch)) {
                int layers = checkpoint.config().numHiddenLayers();
                for (int l = 0; l < layers; l++) {
                    assertEquals(16, ((AttendResponse) stream.send(request(l, 601, 0, 16).build())).getRows());
                }
                assertEquals(2, ((AttendResponse) stream.send(request(0, 602, 0, 2).build())).getRows());

                assertEquals(2, ((AttendResponse) stream.send(request(1, 602, 0, 2).build())).getRows());
                AttendResponse full = (AttendResponse) stream.send(request(0, 603, 0, 1).build());
                assertEquals(List.of(603L), full.getRefusedCacheIdsList());
                assertTrue(full.getRefusal().contains("--kv-cache-mb"), full.getRefusal());
                assertEquals(2, small.cachedSequences());

                // 601 holds 16 positions; its 17th would double its arrays past the budget.
                AttendResponse grow = (AttendResponse) stream.send(request(0, 601, 16, 1).build());
                assertEquals(List.of(601L), grow.getRefusedCacheIdsList());
                // Within what it holds, it goes on.
                assertEquals(1, ((AttendResponse) stream.send(request(0, 601, 15, 1).build())).getRows());
            } finally {
                ch.shutdownNow();
            }
        }
    }
    /**
     * A cache that cannot double grows by less, as the coordinator's own caches do: room for 40
     * positions, two caches of 16. The 17th position of one cannot double it (48) nor add 64 (more than
     * the budget), so it grows to what it needs and what is left (24), and refuses only the 25th.
     */
    @Test
    void aCacheThatCannotDoubleTakesWhatIsLeftOfTheBudget() throws Exception {
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(checkpoint.config());
        try (AttentionWorker small = budgeted("a-tight", 40 * perPosition)) {
            ManagedChannel ch = NettyChannelBuilder.forTarget(small.address()).usePlaintext().build();
            try (Stream stream = new Stream(ch)) {
                int layers = checkpoint.config().numHiddenLayers();
                for (long id : new long[] {701, 702}) {
                    for (int l = 0; l < layers; l++) {
                        assertEquals(16, ((AttendResponse) stream.send(request(l, id, 0, 16).build())).getRows());
                    }
                }
                for (int pos = 16; pos < 24; pos++) {
                    for (int l = 0; l < layers; l++) {
                        AttendResponse r = (AttendResponse) stream.send(request(l, 701, pos, 1).build());
                        assertEquals(1, r.getRows(), "position " + pos + " layer " + l + ": " + r.getRefusal());
                    }
                }
                AttendResponse full = (AttendResponse) stream.send(request(0, 701, 24, 1).build());
                assertEquals(List.of(701L), full.getRefusedCacheIdsList(), "the budget is spent");
            } finally {
                ch.shutdownNow();
            }
        }
    }
    /**
     * A cache grows to what its chunk needs, as counted, not by doubling on each write: room for 130
     * positions; a cache of 4 takes a chunk to position 104 (counted 104; written one position at a
     * time it would double 16, 32, 64, 128), and then a new cache of 16 still fits (104 + 16).
     */
    @Test
    void aLongChunkGrowsACacheToWhatWasCounted() throws Exception {
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(checkpoint.config());
        try (AttentionWorker small = budgeted("a-chunk", 130 * perPosition)) {
            ManagedChannel ch = NettyChannelBuilder.forTarget(small.address()).usePlaintext().build();
            try (Stream stream = new Stream(ch)) {
                int layers = checkpoint.config().numHiddenLayers();
                for (int l = 0; l < layers; l++) {
                    assertEquals(4, ((AttendResponse) stream.send(request(l, 801, 0, 4).build())).getRows());
                }
                for (int l = 0; l < layers; l++) {
                    assertEquals(100, ((AttendResponse) stream.send(request(l, 801, 4, 100).build())).getRows());
                }
                AttendResponse second = (AttendResponse) stream.send(request(0, 802, 0, 16).build());
                assertEquals(16, second.getRows(), "refused: " + second.getRefusal());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /** Random hidden states for {@code rows} rows, the same for the same seed. */
    private static ByteString hiddenRows(int rows, long seed) {
        java.util.Random rnd = new java.util.Random(seed);
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(4 * rows * hidden).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < rows * hidden; i++) {
            b.putFloat((float) rnd.nextGaussian());
        }
        return ByteString.copyFrom(b.array());
    }

    /** Positions start..start+rows-1 of cache id through every layer, each layer's input from seed; the outputs by layer. */
    private static List<ByteString> allLayers(Stream s, long id, int start, int rows, long seed,
            java.util.function.UnaryOperator<AttendRequest.Builder> extra) throws Exception {
        List<ByteString> out = new java.util.ArrayList<>();
        for (int layer = 0; layer < checkpoint.config().numHiddenLayers(); layer++) {
            AttendRequest.Builder b = request(layer).addSegments(SequenceSegment.newBuilder().setCacheId(id)
                    .setStart(start).setLength(rows)).setHiddenStates(hiddenRows(rows, seed + layer));
            Object r = s.send((layer == 0 ? extra.apply(b) : b).build());
            assertEquals(Status.OK, status(r), () -> "layer answered " + r);
            out.add(((AttendResponse) r).getOutput());
        }
        return out;
    }

    /**
     * Prefix caching: positions a stream keeps as blocks start a new cache on that stream exactly as the
     * positions computed there would (the same output bits for what follows); other streams do not see
     * them, a dropped block is gone, and positions a cache does not hold cannot be kept.
     */
    @Test
    void keptPrefixBlocksStartNewCachesOnTheirStreamOnly() throws Exception {
        try (Stream s = new Stream()) {
            allLayers(s, 301, 0, 6, 1, b -> b);
            List<ByteString> computed = allLayers(s, 301, 6, 2, 2, b -> b);
            // Keeps positions 0-5 in two blocks of 3; a new cache starting from them computes positions 6-7.
            List<ByteString> restored = allLayers(s, 302, 6, 2, 2, b -> b
                    .addPrefixKeeps(dev.epic.proto.PrefixKeep.newBuilder().setCacheId(301).setStart(0).setBlockPositions(3)
                            .addBlockIds(11).addBlockIds(12))
                    .addReleasedCacheIds(301) // freed after the keep: its blocks stay
                    .setSegments(0, SequenceSegment.newBuilder().setCacheId(302).setStart(6).setLength(2)
                            .addPrefixBlocks(11).addPrefixBlocks(12)));
            assertEquals(computed, restored, "the same output bits at every layer");
            assertEquals(1, worker.cachedSequences());

            // Starting where the blocks do not end is malformed; on another stream the blocks are unknown.
            try (Stream other = new Stream()) {
                Object unknown = other.send(request(0).addSegments(SequenceSegment.newBuilder().setCacheId(303)
                        .setStart(3).setLength(1).addPrefixBlocks(11)).setHiddenStates(hiddenRows(1, 3)).build());
                assertEquals(Status.Code.FAILED_PRECONDITION, status(unknown).getCode(), unknown::toString);
            }
            Object misfit = s.send(request(0).addSegments(SequenceSegment.newBuilder().setCacheId(304).setStart(4)
                    .setLength(1).addPrefixBlocks(11)).setHiddenStates(hiddenRows(1, 3)).build());
            assertEquals(Status.Code.INVALID_ARGUMENT, status(misfit).getCode(), misfit::toString);
        }
        try (Stream s = new Stream()) {
            allLayers(s, 305, 0, 4, 1, b -> b);
            Object beyond = s.send(request(0).addPrefixKeeps(dev.epic.proto.PrefixKeep.newBuilder().setCacheId(305)
                    .setStart(0).setBlockPositions(3).addBlockIds(21).addBlockIds(22)).build());
            assertEquals(Status.Code.INVALID_ARGUMENT, status(beyond).getCode(), "positions 4-5 are not held: " + beyond);
        }
        try (Stream s = new Stream()) {
            allLayers(s, 306, 0, 4, 1, b -> b);
            Object kept = s.send(request(0).addPrefixKeeps(dev.epic.proto.PrefixKeep.newBuilder().setCacheId(306)
                    .setStart(0).setBlockPositions(4).addBlockIds(31)).build());
            assertEquals(Status.OK, status(kept), () -> "a message without rows: " + kept);
            // Drops come before the segments' blocks are looked up (and before keeps).
            Object dropped = s.send(request(0).addDroppedPrefixBlocks(31)
                    .addSegments(SequenceSegment.newBuilder().setCacheId(307).setStart(4).setLength(1).addPrefixBlocks(31))
                    .setHiddenStates(hiddenRows(1, 3)).build());
            assertEquals(Status.Code.FAILED_PRECONDITION, status(dropped).getCode(), "block 31 was dropped: " + dropped);
        }
        awaitCached(0);
    }

    private static float[] floats(ByteString b) {
        float[] f = new float[b.size() / 4];
        b.asReadOnlyByteBuffer().order(java.nio.ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    /**
     * A cache asked for with the MTP layer holds it as layer num_hidden_layers, whose attention gives the
     * bits of the same MLA run in process over a cache of that many layers, its chained drafts' rows
     * too; the MTP layer of a cache made without it is refused.
     */
    @Test
    void runsTheMtpLayersAttentionForCachesMadeWithIt() throws Exception {
        int n = checkpoint.config().numHiddenLayers();
        AttentionLayers local = AttentionLayers.load(checkpoint.config(), checkpoint);
        dev.epic.model.HeapKvCache cache = local.newCache(dev.epic.model.KvCacheDtype.FP32, n + 1);
        try (Stream s = new Stream()) {
            allLayers(s, 901, 0, 4, 1, b -> b.setSegments(0, b.getSegments(0).toBuilder().setCacheLayers(n + 1)));
            int[][] steps = {{0, 4}, {4, 1}, {5, 1}}; // the first pass over the step's positions, then two chained
            for (int[] step : steps) {
                ByteString x = hiddenRows(step[1], 60 + step[0]);
                Object r = s.send(request(n).addSegments(SequenceSegment.newBuilder().setCacheId(901).setStart(step[0])
                        .setLength(step[1])).setHiddenStates(x).build());
                assertEquals(Status.OK, status(r), () -> "MTP layer answered " + r);
                float[] y = new float[step[1] * hidden];
                local.layer(n).forward(floats(x), step[1],
                        List.of(new dev.epic.model.layers.SequenceRows(cache, step[0], 0, step[1])), y);
                assertTrue(java.util.Arrays.equals(y, floats(((AttendResponse) r).getOutput())),
                        "the in-process MLA's bits at positions " + step[0] + "..");
            }
            allLayers(s, 902, 0, 2, 1, b -> b);
            Object without = s.send(request(n, 902, 0, 1).build());
            assertEquals(Status.Code.INVALID_ARGUMENT, status(without).getCode(), without::toString);
            assertTrue(status(without).getDescription().contains("made without the MTP layer"), without::toString);
        }
        awaitCached(0);
    }
}
