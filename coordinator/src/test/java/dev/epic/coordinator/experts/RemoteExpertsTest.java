package dev.epic.coordinator.experts;

import static dev.epic.kernels.VectorOps.argmax;
import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.Golden;
import dev.epic.model.KvCache;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertServiceGrpc;
import dev.epic.proto.HiddenEncoding;
import dev.epic.proto.InfoRequest;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.proto.WorkerInfo;
import dev.epic.transport.Announcements;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.DispatchOnce;
import dev.epic.worker.ExpertShard;
import dev.epic.worker.ExpertWorker;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.net.ServerSocket;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.apache.zookeeper.CreateMode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * RemoteExperts against real expert workers (gRPC over loopback, real ZooKeeper) hosting shards of
 * the golden checkpoints: the same numbers as local experts, the golden logits, failover.
 */
class RemoteExpertsTest {
    private static final float LOGIT_TOL = Golden.LOGIT_TOL;
    private static TestingServer zkServer;
    private static CuratorFramework zk;
    private static final Map<String, Checkpoint> CHECKPOINTS = new HashMap<>();
    private static final List<ExpertWorker> WORKERS = new ArrayList<>();

    @BeforeAll
    static void start() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        zk.blockUntilConnected();
    }

    @AfterAll
    static void stop() throws Exception {
        WORKERS.forEach(ExpertWorker::close);
        CHECKPOINTS.values().forEach(Checkpoint::close);
        zk.close();
        zkServer.close();
    }

    static Checkpoint checkpoint(String name) {
        return CHECKPOINTS.computeIfAbsent(name, n -> Checkpoint.open(TestData.model(n)));
    }

    static CheckpointFingerprint fingerprint(String name) {
        return CheckpointFingerprint.of(TestData.model(name));
    }

    static ExpertWorker worker(String model, String cluster, String experts) throws Exception {
        return worker(model, cluster, experts, WeightFormat.AUTO);
    }

    static ExpertWorker worker(String model, String cluster, String experts, WeightFormat format) throws Exception {
        return worker(model, cluster, shard(model, experts, format), format.id());
    }

    static CheckpointShard shard(String model, String experts, WeightFormat format) {
        Checkpoint c = checkpoint(model);
        return CheckpointShard.load(c, ExpertRanges.parse(experts, c.config().nRoutedExperts()), format);
    }

    static ExpertWorker worker(String model, String cluster, ExpertShard shard) throws Exception {
        return worker(model, cluster, shard, "");
    }

    /** @param weights the format it announces ("": none) */
    static ExpertWorker worker(String model, String cluster, ExpertShard shard, String weights) throws Exception {
        ModelConfig cfg = checkpoint(model).config();
        int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
        ExpertWorker w = ExpertWorker.start(shard, fingerprint(model), moeLayers,
                new ExpertWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster, null, 64, 10_000, 1_000, 0,
                        0, weights));
        WORKERS.add(w);
        return w;
    }

    static RemoteExperts remote(String model, String cluster, RemoteExperts.Options options) throws Exception {
        ModelConfig cfg = checkpoint(model).config();
        RemoteExperts re = RemoteExperts.create(zk, cluster, fingerprint(model), cfg.nRoutedExperts(), cfg.hiddenSize(),
                options, null);
        assertTrue(re.awaitCoverage(Duration.ofSeconds(20)), "coverage; missing " + re.missingExperts());
        return re;
    }

    /** A registered worker that is not there: its port is closed (as after kill -9, before the session expires). */
    static void ghost(String model, String cluster, String id, String experts) throws Exception {
        ghost(model, cluster, id, experts, false);
    }

    /** As above, announcing the MTP layer's experts too when {@code mtpLayer}. */
    static void ghost(String model, String cluster, String id, String experts, boolean mtpLayer) throws Exception {
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        register(model, cluster, id, port, experts, mtpLayer);
    }

    /** Registers a worker node for 127.0.0.1:{@code port}, whatever listens there. */
    static void register(String model, String cluster, String id, int port, String experts) throws Exception {
        register(model, cluster, id, port, experts, false);
    }

    private static void register(String model, String cluster, String id, int port, String experts, boolean mtpLayer)
            throws Exception {
        CheckpointFingerprint fp = fingerprint(model);
        WorkerAnnouncement.Builder a = WorkerAnnouncement.newBuilder().setWorkerId(id).setAddress("127.0.0.1:" + port)
                .setFingerprint(ModelFingerprint.newBuilder().setName(fp.name()).setSha256(fp.sha256()))
                .setCapacity(8).setPid(0).setProtocolVersion(Protocol.VERSION).setMtpLayer(mtpLayer);
        for (int e : ExpertRanges.parse(experts, checkpoint(model).config().nRoutedExperts())) {
            a.addExperts(e);
        }
        zk.create().creatingParentsIfNeeded().withMode(CreateMode.EPHEMERAL)
                .forPath(ZkLayout.workerPath(cluster, id), Announcements.toJson(a.build()));
    }

    /** Random routing inputs: rows x hidden activations, k distinct experts per row, positive weights. */
    record Inputs(float[] x, int rows, int[] ids, float[] weights, int k) {
        static Inputs random(int rows, int hidden, int experts, int k, long seed) {
            SplittableRandom r = new SplittableRandom(seed);
            float[] x = new float[rows * hidden];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            int[] ids = new int[rows * k];
            float[] w = new float[rows * k];
            for (int i = 0; i < rows; i++) {
                int[] pick = r.ints(0, experts).distinct().limit(k).toArray();
                for (int j = 0; j < k; j++) {
                    ids[i * k + j] = pick[j];
                    w[i * k + j] = (float) r.nextDouble(0.05, 1);
                }
            }
            return new Inputs(x, rows, ids, w, k);
        }
    }

    @Test
    void remoteEqualsLocalExpertsForEveryMoeLayerAndSplit() throws Exception {
        String model = "tiny-v3";
        Checkpoint c = checkpoint(model);
        ModelConfig cfg = c.config();
        LocalExperts local = LocalExperts.all(cfg, c);
        worker(model, "eq-one", "0-255");
        worker(model, "eq-four", "0-63");
        worker(model, "eq-four", "64-127");
        worker(model, "eq-four", "128-200");
        worker(model, "eq-four", "201-255");
        try (RemoteExperts one = remote(model, "eq-one", RemoteExperts.Options.defaults());
                RemoteExperts four = remote(model, "eq-four", RemoteExperts.Options.defaults())) {
            for (int layer = cfg.firstKDenseReplace(); layer < cfg.numHiddenLayers(); layer++) {
                Inputs in = Inputs.random(7, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), layer);
                float[] expected = new float[in.x.length];
                local.forward(layer, in.x, in.rows, in.ids, in.weights, in.k, expected);
                float[] got = new float[in.x.length];
                one.forward(layer, in.x, in.rows, in.ids, in.weights, in.k, got);
                // Exact FP64 answers: bit for bit the in-process result, however the experts are grouped.
                assertArrayEquals(expected, got, "one worker, layer " + layer);
                four.forward(layer, in.x, in.rows, in.ids, in.weights, in.k, got);
                assertArrayEquals(expected, got, "four workers, layer " + layer);
            }
            DispatchStats.Snapshot s = four.stats().snapshot();
            assertEquals(cfg.numHiddenLayers() - cfg.firstKDenseReplace(), s.layerCalls());
            assertTrue(s.messages() <= 4L * s.layerCalls(), "at most one message per worker per layer: " + s);
            assertTrue(s.bytesSent() >= 4L * 7 * cfg.hiddenSize(), "fp32 rows were sent: " + s);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void engineWithRemoteExpertsMatchesGoldenLogits(String model) throws Exception {
        ModelConfig cfg = checkpoint(model).config();
        int n = cfg.nRoutedExperts();
        String cluster = "golden-" + model;
        worker(model, cluster, "0-" + (n / 2 - 1));
        worker(model, cluster, (n / 2) + "-" + (n - 1));
        try (RemoteExperts re = remote(model, cluster, RemoteExperts.Options.defaults())) {
            Transformer engine = new Transformer(cfg, checkpoint(model), re);
            assertGolden(model, engine, 0, 1, 3);
            assertTrue(re.stats().snapshot().layerCalls() > 0);
        }
    }

    /**
     * Two-batch overlap over real workers, one of them a dead replica whose rows are retried: each step of
     * several sequences runs as two micro-batches, each one's attention while the other's experts are on
     * the workers, and its logits are the in-process engine's bits.
     */
    @Test
    void twoBatchOverlapGivesTheInProcessBits() throws Exception {
        String model = "tiny-v3";
        ModelConfig cfg = checkpoint(model).config();
        int n = cfg.nRoutedExperts();
        String cluster = "overlap";
        worker(model, cluster, "0-" + (n / 2 - 1));
        worker(model, cluster, (n / 2) + "-" + (n - 1));
        ghost(model, cluster, "ghost", "0-" + (n - 1));
        try (RemoteExperts re = remote(model, cluster, RemoteExperts.Options.defaults())) {
            Poll.until("three workers", () -> re.workers().size() == 3);
            Transformer remote = new Transformer(cfg, checkpoint(model), re).twoBatchOverlap(true);
            Transformer local = Transformer.load(checkpoint(model));
            List<Golden.Prompt> prompts = Golden.of(model).prompts();
            KvCache[] r = new KvCache[3];
            KvCache[] l = new KvCache[3];
            int[] next = new int[3];
            List<dev.epic.model.SequenceChunk> rc = new ArrayList<>();
            List<dev.epic.model.SequenceChunk> lc = new ArrayList<>();
            for (int step = 0; step < 5; step++) {
                rc.clear();
                lc.clear();
                for (int i = 0; i < 3; i++) {
                    if (step == 0) {
                        r[i] = remote.newCache();
                        l[i] = local.newCache();
                    }
                    int[] tokens = step == 0 ? prompts.get(i).tokens() : new int[] {next[i]};
                    rc.add(dev.epic.model.SequenceChunk.next(r[i], tokens));
                    lc.add(dev.epic.model.SequenceChunk.next(l[i], tokens));
                }
                List<float[]> want = local.step(lc);
                List<float[]> got = remote.step(rc);
                for (int i = 0; i < 3; i++) {
                    assertArrayEquals(want.get(i), got.get(i), "step " + step + ", sequence " + i);
                    next[i] = argmax(got.get(i));
                }
            }
            DispatchStats.Snapshot s = re.stats().snapshot();
            int moeLayers = cfg.numHiddenLayers() - cfg.firstKDenseReplace();
            assertEquals(5L * 2 * moeLayers, s.layerCalls(), "two experts calls per MoE layer per step: " + s);
            assertTrue(s.retries() > 0, "the ghost got rows and they were retried: " + s);
        }
    }

    static void assertGolden(String model, Transformer engine, int... promptIndexes) {
        List<Golden.Prompt> prompts = Golden.of(model).prompts();
        for (int p : promptIndexes) {
            Golden.Prompt g = prompts.get(p);
            KvCache cache = engine.newCache();
            float[] logits = engine.forward(cache, g.tokens());
            float diff = maxAbsDiff(g.prefillLogits(), logits);
            assertTrue(diff <= LOGIT_TOL, model + " prompt " + p + " prefill max abs diff " + diff);
            int[] tokens = new int[g.greedyTokens().length];
            for (int k = 0; k < tokens.length; k++) {
                tokens[k] = argmax(logits);
                logits = engine.forward(cache, tokens[k]);
                diff = maxAbsDiff(g.stepLogits()[k], logits);
                assertTrue(diff <= LOGIT_TOL, model + " prompt " + p + " step " + k + " max abs diff " + diff);
            }
            assertArrayEquals(g.greedyTokens(), tokens, model + " prompt " + p + " greedy tokens");
        }
    }

    /** Workers converting their experts (epic expert-worker --weights q8) equal the in-process q8 engine's experts. */
    /** A worker hosting {@code experts} of every MoE layer and of the MTP layer (--mtp-layer). */
    static ExpertWorker mtpWorker(String model, String cluster, String experts) throws Exception {
        Checkpoint c = checkpoint(model);
        return worker(model, cluster, CheckpointShard.load(c, ExpertRanges.parse(experts, c.config().nRoutedExperts()),
                WeightFormat.AUTO, true));
    }

    /** The MTP layer's own experts, counting how often the coordinator made its copy. */
    private static final class OwnCopy implements java.util.function.Supplier<dev.epic.model.moe.RoutedExperts> {
        final LocalExperts experts;
        int made;

        OwnCopy(ModelConfig cfg, Checkpoint c) {
            experts = LocalExperts.layer(cfg, c, cfg.numHiddenLayers());
        }

        @Override
        public dev.epic.model.moe.RoutedExperts get() {
            made++;
            return experts;
        }
    }

    /** Runs {@code layer} on {@code in}: the numbers are {@code expected}, and the caller's own work ran once. */
    private static void assertLayer(MtpLayerExperts layer, int mtp, Inputs in, float[] expected) {
        float[] got = new float[in.x.length];
        int[] alongside = {0};
        layer.forward(mtp, in.x, in.rows, in.ids, in.weights, in.k, got, () -> alongside[0]++);
        assertArrayEquals(expected, got);
        assertEquals(1, alongside[0], "the caller's own work ran once");
    }

    /**
     * Workers that announce the MTP layer run its experts while they cover it: the numbers are the
     * in-process layer's bit for bit, the coordinator makes no copy of its own, one message goes to each
     * worker, and the rows are not counted in the load the rebalancer places redundant experts from.
     */
    @Test
    void theMtpLayerRunsOnTheWorkersThatAnnounceIt() throws Exception {
        String model = "tiny-v3";
        Checkpoint c = checkpoint(model);
        ModelConfig cfg = c.config();
        int mtp = cfg.numHiddenLayers();
        String cluster = "mtp-on-workers";
        mtpWorker(model, cluster, "0-127");
        mtpWorker(model, cluster, "128-255");
        try (RemoteExperts re = remote(model, cluster, RemoteExperts.Options.defaults())) {
            OwnCopy own = new OwnCopy(cfg, c);
            MtpLayerExperts layer = (MtpLayerExperts) re.mtpLayer(mtp, own);
            assertNull(layer.onWorkers());
            assertTrue(re.coversMtpLayer());
            Inputs in = Inputs.random(9, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), 41);
            float[] expected = new float[in.x.length];
            own.experts.forward(mtp, in.x, in.rows, in.ids, in.weights, in.k, expected);
            long before = re.stats().snapshot().messages();
            assertLayer(layer, mtp, in, expected);
            assertEquals(0, own.made, "no copy in the coordinator");
            assertEquals(Boolean.TRUE, layer.onWorkers());
            assertEquals(2, re.stats().snapshot().messages() - before, "one message to each worker");
            long[][] load = re.takeLoad();
            assertTrue(load.length <= mtp || Arrays.stream(load[mtp]).sum() == 0, "the MTP layer's rows are not load");
            assertThrows(IllegalArgumentException.class,
                    () -> layer.forward(mtp - 1, in.x, in.rows, in.ids, in.weights, in.k, new float[in.x.length]));
        }
    }

    /**
     * Where the workers announcing the MTP layer do not cover every expert, the coordinator runs the
     * layer on its own copy, made once; and when a worker is lost in a call with no other to take its
     * rows, the call is run there too instead of failing: the same numbers either way.
     */
    @Test
    @Timeout(value = 60, unit = TimeUnit.SECONDS)
    void theMtpLayerRunsInTheCoordinatorWhereTheWorkersDoNotCoverItOrFail() throws Exception {
        String model = "tiny-v3";
        Checkpoint c = checkpoint(model);
        ModelConfig cfg = c.config();
        int mtp = cfg.numHiddenLayers();
        worker(model, "mtp-partial", "128-255"); // without --mtp-layer
        mtpWorker(model, "mtp-partial", "0-127");
        mtpWorker(model, "mtp-lost", "0-127");
        ghost(model, "mtp-lost", "ghost", "128-255", true); // announces the layer, but nothing listens
        Inputs in = Inputs.random(6, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), 43);
        OwnCopy own = new OwnCopy(cfg, c);
        float[] expected = new float[in.x.length];
        own.experts.forward(mtp, in.x, in.rows, in.ids, in.weights, in.k, expected);
        try (RemoteExperts partial = remote(model, "mtp-partial", RemoteExperts.Options.defaults())) {
            assertFalse(partial.coversMtpLayer());
            MtpLayerExperts layer = (MtpLayerExperts) partial.mtpLayer(mtp, own);
            long before = partial.stats().snapshot().messages();
            for (int i = 0; i < 2; i++) {
                assertLayer(layer, mtp, in, expected);
            }
            assertEquals(1, own.made, "one copy, made when first needed");
            assertEquals(Boolean.FALSE, layer.onWorkers());
            assertEquals(0, partial.stats().snapshot().messages() - before, "nothing sent");
        }
        OwnCopy own2 = new OwnCopy(cfg, c);
        RemoteExperts.Options opts = RemoteExperts.Options.defaults().withDeadline(Duration.ofSeconds(5));
        try (RemoteExperts lost = remote(model, "mtp-lost", opts)) {
            assertTrue(lost.coversMtpLayer(), "the ghost counts until it fails");
            MtpLayerExperts layer = (MtpLayerExperts) lost.mtpLayer(mtp, own2);
            assertLayer(layer, mtp, in, expected); // run here after the ghost failed
            assertEquals(1, own2.made);
            assertTrue(lost.stats().snapshot().failures() > 0);
            assertFalse(lost.coversMtpLayer(), "the ghost counts as down until it answers");
        }
    }

    /**
     * The engine's MTP module on workers announcing the layer: its drafts' logits are the in-process
     * module's bit for bit, and its routed experts went to the workers (one more layer call).
     */
    @Test
    void anEngineDraftsWithTheMtpLayerOnTheWorkers() throws Exception {
        String model = "tiny-v3";
        Checkpoint c = checkpoint(model);
        ModelConfig cfg = c.config();
        String cluster = "mtp-engine";
        mtpWorker(model, cluster, "0-99");
        mtpWorker(model, cluster, "100-255");
        try (RemoteExperts re = remote(model, cluster, RemoteExperts.Options.defaults())) {
            Transformer remote = new Transformer(cfg, c, re).enableMtp();
            Transformer local = Transformer.load(c).enableMtp();
            int[] tokens = IntStream.range(0, 12).map(j -> (j * 977 + 131) % cfg.vocabSize()).toArray();
            int n = tokens.length - 1;
            float[][] logits = new float[2][];
            long[] calls = new long[2];
            int i = 0;
            for (Transformer t : List.of(remote, local)) {
                KvCache cache = t.newCache();
                float[] hidden = t.stepWithHidden(List.of(new dev.epic.model.SequenceChunk(cache,
                        Arrays.copyOf(tokens, n), 0))).hidden();
                long before = re.stats().snapshot().layerCalls();
                logits[i] = t.mtp().step(List.of(new dev.epic.model.layers.Mtp.Chunk(cache, 0,
                        Arrays.copyOfRange(tokens, 1, n + 1), hidden, 0, true))).getFirst().logits();
                calls[i++] = re.stats().snapshot().layerCalls() - before;
            }
            assertArrayEquals(logits[1], logits[0]);
            assertEquals(1, calls[0], "the MTP layer's experts ran on the workers");
            assertEquals(0, calls[1]);
        }
    }

    @Test
    void convertedWorkersEqualTheInProcessConvertedExperts() throws Exception {
        String model = "tiny-v3";
        Checkpoint c = checkpoint(model);
        ModelConfig cfg = c.config();
        LocalExperts local = LocalExperts.all(cfg, ConvertedWeights.of(c, WeightFormat.Q8, c.directory()));
        LocalExperts stored = LocalExperts.all(cfg, c);
        worker(model, "q8-two", "0-100", WeightFormat.Q8);
        worker(model, "q8-two", "101-255", WeightFormat.Q8);
        try (RemoteExperts two = remote(model, "q8-two", RemoteExperts.Options.defaults())) {
            int layer = cfg.firstKDenseReplace();
            Inputs in = Inputs.random(5, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), 99);
            float[] expected = new float[in.x.length];
            local.forward(layer, in.x, in.rows, in.ids, in.weights, in.k, expected);
            float[] got = new float[in.x.length];
            two.forward(layer, in.x, in.rows, in.ids, in.weights, in.k, got);
            assertArrayEquals(expected, got, "q8 workers vs in-process q8 experts");
            float[] asStored = new float[in.x.length];
            stored.forward(layer, in.x, in.rows, in.ids, in.weights, in.k, asStored);
            assertFalse(Arrays.equals(asStored, got), "the workers did convert: q8 differs from the stored weights");
        }
    }

    /** Replicas must compute the same rows: a worker announcing another weight format than the coordinator's is refused. */
    @Test
    void aWorkerInAnotherWeightFormatIsRefused() throws Exception {
        String model = "tiny-v3";
        ModelConfig cfg = checkpoint(model).config();
        worker(model, "formats", "0-255", WeightFormat.Q8);
        try (RemoteExperts auto = RemoteExperts.create(zk, "formats", fingerprint(model), cfg.nRoutedExperts(),
                cfg.hiddenSize(), RemoteExperts.Options.defaults().withWeights("auto"), null)) {
            assertFalse(auto.awaitCoverage(Duration.ofSeconds(2)), "a q8 worker for an auto coordinator");
            assertTrue(auto.workers().isEmpty(), auto.workers().toString());
        }
        try (RemoteExperts q8 = remote(model, "formats", RemoteExperts.Options.defaults().withWeights("q8"))) {
            assertEquals(1, q8.workers().size());
        }
    }

    @Test
    void deadReplicaIsRetriedOnTheLiveOneAndADrainedWorkerIsDropped() throws Exception {
        String model = "tiny-v3-fp8";
        String cluster = "failover";
        ModelConfig cfg = checkpoint(model).config();
        worker(model, cluster, "0-63");
        ExpertWorker second = worker(model, cluster, "0-63");
        ghost(model, cluster, "ghost", "0-63");
        try (RemoteExperts re = remote(model, cluster, RemoteExperts.Options.defaults())) {
            Poll.until("three workers", () -> re.workers().size() == 3);
            Transformer engine = new Transformer(cfg, checkpoint(model), re);
            assertGolden(model, engine, 1);
            assertTrue(re.stats().snapshot().retries() > 0, "the ghost got rows and they were retried: "
                    + re.stats().snapshot());
            second.close(); // graceful drain: deregisters first
            assertNull(zk.checkExists().forPath(ZkLayout.workerPath(cluster, second.workerId())));
            Poll.until("drained worker dropped", () -> re.workers().size() == 2);
            assertGolden(model, engine, 2);
        }
    }

    @Test
    void noLiveReplicaFailsFastWithUnavailableThenRecovers() throws Exception {
        String model = "tiny-v3-fp8";
        String cluster = "single";
        ModelConfig cfg = checkpoint(model).config();
        worker(model, cluster, "0-31");
        ghost(model, cluster, "ghost", "32-63");
        RemoteExperts.Options opts = RemoteExperts.Options.defaults().withDeadline(Duration.ofSeconds(2));
        try (RemoteExperts re = remote(model, cluster, opts)) {
            Inputs in = Inputs.random(3, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), 9);
            float[] out = new float[in.x.length];
            var e = assertThrows(ExpertsUnavailableException.class,
                    () -> re.forward(1, in.x, in.rows, in.ids, in.weights, in.k, out));
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
            String msg = e.getStatus().getDescription();
            assertTrue(msg.startsWith("no live expert worker for experts ") && msg.contains("(layer 1;"), msg);
            int[] named = ExpertRanges.parse(msg.substring("no live expert worker for experts ".length(), msg.indexOf(" (")), 64);
            assertTrue(named.length > 0 && java.util.Arrays.stream(named).allMatch(x -> x >= 32), msg);
            assertTrue(re.stats().snapshot().failures() > 0);
            // immediately again: the ghost is in its dead backoff, so this fails without any network wait
            assertThrows(ExpertsUnavailableException.class,
                    () -> re.forward(1, in.x, in.rows, in.ids, in.weights, in.k, out));

            worker(model, cluster, "32-63"); // the missing shard comes (back) up
            assertTrue(re.awaitCoverage(Duration.ofSeconds(20)));
            float[] expected = new float[in.x.length];
            LocalExperts.all(cfg, checkpoint(model)).forward(1, in.x, in.rows, in.ids, in.weights, in.k, expected);
            re.forward(1, in.x, in.rows, in.ids, in.weights, in.k, out);
            assertArrayEquals(expected, out, "after failover and recovery");
        }
    }

    /**
     * One replica hangs (a stopped process: its port takes connections that nothing reads, and its
     * ZooKeeper session lives on) while the other answers: the hung one costs one deadline, then its
     * rows go to the healthy replica until it answers its probe, rather than costing a deadline again
     * each time its failure backoff runs out.
     */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS)
    void aHungReplicaCostsOneDeadlineWhileAnotherAnswers() throws Exception {
        String model = "tiny-v3-fp8";
        String cluster = "hung-one";
        ModelConfig cfg = checkpoint(model).config();
        worker(model, cluster, "0-63");
        try (ServerSocket stopped = new ServerSocket(0, 50, java.net.InetAddress.getLoopbackAddress())) {
            register(model, cluster, "stopped", stopped.getLocalPort(), "0-63");
            RemoteExperts.Options opts = new RemoteExperts.Options(HiddenEncoding.FP32, Duration.ofSeconds(1),
                    Duration.ofMillis(100), Duration.ZERO, null);
            try (RemoteExperts re = remote(model, cluster, opts)) {
                Poll.until("both replicas", () -> re.workers().size() == 2);
                Inputs in = Inputs.random(8, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), 5);
                float[] expected = new float[in.x.length];
                LocalExperts.all(cfg, checkpoint(model)).forward(1, in.x, in.rows, in.ids, in.weights, in.k, expected);
                float[] out = new float[in.x.length];
                int calls = 0;
                for (long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(3); System.nanoTime() < end; calls++) {
                    re.forward(1, in.x, in.rows, in.ids, in.weights, in.k, out);
                    assertArrayEquals(expected, out, "call " + calls);
                }
                var stats = re.stats().snapshot();
                assertEquals(1, stats.retries(), "one deadline missed (its rows retried) in " + calls + " calls: " + stats);
                assertEquals(0, stats.failures(), stats.toString());
            }
        }
    }

    /**
     * Two replicas that never answer, and a deadline longer than the failure backoff: by the time one
     * times out the other is out of its backoff. Each is tried once in the call, which then fails
     * with UNAVAILABLE instead of taking them in turns forever (holding the engine with it).
     */
    @Test
    @Timeout(value = 120, unit = TimeUnit.SECONDS) // what a hang would run into
    void hungReplicasAreTriedOnceEachThenTheCallIsUnavailable() throws Exception {
        String model = "tiny-v3-fp8";
        String cluster = "hung";
        ModelConfig cfg = checkpoint(model).config();
        List<StallingShard> hung = List.of(new StallingShard(shard(model, "0-63", WeightFormat.AUTO)),
                new StallingShard(shard(model, "0-63", WeightFormat.AUTO)));
        try {
            for (StallingShard s : hung) {
                worker(model, cluster, s);
            }
            RemoteExperts.Options opts = new RemoteExperts.Options(HiddenEncoding.FP32, Duration.ofSeconds(1),
                    Duration.ofMillis(100), Duration.ZERO, null);
            try (RemoteExperts re = remote(model, cluster, opts)) {
                Poll.until("both replicas", () -> re.workers().size() == 2);
                int hidden = cfg.hiddenSize();
                // One pair, so the first round asks one replica and the retry the other.
                var e = assertThrows(ExpertsUnavailableException.class, () -> re.forward(1, new float[hidden], 1,
                        new int[] {3}, new float[] {1f}, 1, new float[hidden]));
                assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
                String msg = e.getStatus().getDescription();
                assertTrue(msg.startsWith("no live expert worker for experts 3 (layer 1;")
                        && msg.contains("no answer within 1000 ms"), msg);
                assertEquals(1, re.stats().snapshot().retries(), "the second replica once: " + re.stats().snapshot());
            }
        } finally {
            hung.forEach(StallingShard::release);
        }
    }

    @Test
    void compressedWireFormatsStayCloseToExact() throws Exception {
        String model = "tiny-v3";
        ModelConfig cfg = checkpoint(model).config();
        worker(model, "wire", "0-255");
        Inputs in = Inputs.random(16, cfg.hiddenSize(), cfg.nRoutedExperts(), cfg.numExpertsPerTok(), 5);
        float[] exact = new float[in.x.length];
        LocalExperts.all(cfg, checkpoint(model)).forward(2, in.x, in.rows, in.ids, in.weights, in.k, exact);
        float scale = 0;
        for (float v : exact) {
            scale = Math.max(scale, Math.abs(v));
        }
        long fp32Bytes = 0;
        for (HiddenEncoding enc : new HiddenEncoding[] {HiddenEncoding.FP32, HiddenEncoding.BF16, HiddenEncoding.FP8_E4M3}) {
            try (RemoteExperts re = remote(model, "wire", RemoteExperts.Options.defaults().withEncoding(enc))) {
                float[] got = new float[in.x.length];
                re.forward(2, in.x, in.rows, in.ids, in.weights, in.k, got);
                float rel = maxAbsDiff(exact, got) / scale;
                float bound = switch (enc) {
                    case FP32 -> 1e-6f;
                    case BF16 -> 2e-2f;
                    default -> 1.5e-1f;
                };
                assertTrue(rel <= bound, enc + " relative error " + rel);
                long bytes = re.stats().snapshot().bytesSent();
                if (enc == HiddenEncoding.FP32) {
                    fp32Bytes = bytes;
                } else {
                    assertTrue(bytes < fp32Bytes, enc + " sends fewer bytes: " + bytes + " vs " + fp32Bytes);
                }
            }
        }
    }

    @Test
    void workerRefusesAnotherModelOrProtocolAndAnswersInfo() throws Exception {
        String model = "tiny-v3";
        ExpertWorker w = worker(model, "refuse", "0-7");
        ManagedChannel ch = NettyChannelBuilder.forTarget(w.address()).usePlaintext().build();
        try {
            WorkerInfo info = ExpertServiceGrpc.newBlockingStub(ch).info(InfoRequest.getDefaultInstance());
            assertEquals(fingerprint(model).sha256(), info.getFingerprint().getSha256());
            assertEquals(8, info.getExpertsCount());
            assertEquals(64, info.getHiddenSize());
            // standard gRPC health (Kubernetes readiness probes): SERVING once registered
            assertEquals(io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING,
                    io.grpc.health.v1.HealthGrpc.newBlockingStub(ch)
                            .check(io.grpc.health.v1.HealthCheckRequest.getDefaultInstance()).getStatus());
            // and the liveness probe's service
            assertEquals(io.grpc.health.v1.HealthCheckResponse.ServingStatus.SERVING,
                    io.grpc.health.v1.HealthGrpc.newBlockingStub(ch).check(io.grpc.health.v1.HealthCheckRequest
                            .newBuilder().setService(dev.epic.transport.WorkerServer.LIVENESS).build()).getStatus());

            ExpertRequest good = ExpertRequest.newBuilder().setProtocolVersion(Protocol.VERSION)
                    .setFingerprint(fingerprint(model).sha256()).setLayer(1).setRows(1).setHidden(64)
                    .setEncoding(HiddenEncoding.FP32).setHiddenStates(com.google.protobuf.ByteString.copyFrom(new byte[256]))
                    .addExpertCounts(1).addExpertIds(3).addGateWeights(1f).build();
            assertEquals(256, DispatchOnce.send(ch, good).getOutput().size());
            Status s = Status.fromThrowable(assertThrows(Exception.class,
                    () -> DispatchOnce.send(ch, good.toBuilder().setFingerprint(fingerprint("tiny-v3-fp8").sha256()).build())));
            assertEquals(Status.Code.FAILED_PRECONDITION, s.getCode());
            assertTrue(s.getDescription().contains("model fingerprint mismatch"), s.getDescription());
            s = Status.fromThrowable(assertThrows(Exception.class,
                    () -> DispatchOnce.send(ch, good.toBuilder().setProtocolVersion(99).build())));
            assertEquals(Status.Code.FAILED_PRECONDITION, s.getCode());
            assertTrue(s.getDescription().contains("protocol version 99"), s.getDescription());
            s = Status.fromThrowable(assertThrows(Exception.class,
                    () -> DispatchOnce.send(ch, good.toBuilder().setExpertIds(0, 9).build())));
            assertEquals(Status.Code.INVALID_ARGUMENT, s.getCode());
            assertTrue(s.getDescription().contains("expert 9 is not hosted"), s.getDescription());
        } finally {
            ch.shutdownNow();
        }
    }
}
