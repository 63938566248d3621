package dev.epic.coordinator.scheduler;

import static dev.epic.coordinator.scheduler.MtpScripts.CHECKPOINT;
import static dev.epic.coordinator.scheduler.MtpScripts.chainedScript;
import static dev.epic.coordinator.scheduler.MtpScripts.count;
import static dev.epic.coordinator.scheduler.MtpScripts.counts;
import static dev.epic.coordinator.scheduler.MtpScripts.generate;
import static dev.epic.coordinator.scheduler.MtpScripts.prompt;
import static dev.epic.coordinator.scheduler.MtpScripts.script;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.attention.AttentionWorker;
import dev.epic.coordinator.attention.AttentionUnavailableException;
import dev.epic.coordinator.attention.RemoteAttention;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvPool;
import dev.epic.model.PrefixStore;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.attention.ExternalAttention;
import dev.epic.model.layers.SequenceRows;
import dev.epic.model.moe.LocalExperts;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import io.grpc.Status;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Drafting with the MTP layer when attention runs on attention workers (real gRPC, a real ZooKeeper):
 * the workers hold the MTP layer as one more layer of each cache and run its attention. The drafts
 * are checked as in {@link MtpDraftingTest}, against the MTP layer's predictions computed in process:
 * the fp32 wire and the same MLA code make them the same bits.
 */
class MtpDraftingOnAttentionWorkersTest {
    private static TestingServer zkServer;
    private static CuratorFramework zk;
    private static int clusters;
    private final List<AutoCloseable> closing = new ArrayList<>();

    @BeforeAll
    static void startZk() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
    }

    @AfterAll
    static void stopZk() throws Exception {
        zk.close();
        zkServer.close();
    }

    @AfterEach
    void stop() throws Exception {
        for (AutoCloseable c : closing.reversed()) {
            c.close();
        }
        closing.clear();
    }

    /** {@code count} attention workers keeping prefix blocks, and a RemoteAttention whose caches hold the MTP layer. */
    private RemoteAttention attentionWorkers(int count) throws Exception {
        return attentionWorkers(count, KvCacheDtype.FP32);
    }

    /** As above, the caches storing positions in {@code dtype}. */
    private RemoteAttention attentionWorkers(int count, KvCacheDtype dtype) throws Exception {
        String cluster = "mtp-" + clusters++;
        var fingerprint = CheckpointFingerprint.of(TestData.model("tiny-v3"));
        for (int i = 0; i < count; i++) {
            AttentionWorker w = AttentionWorker.start(AttentionLayers.load(CHECKPOINT.config(), CHECKPOINT), fingerprint,
                    new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster, "a-" + i, 16, 4000,
                            200, 0, AttentionWorker.defaultKvCacheBytes()).withPrefixCacheBytes(64L << 20)
                            .withKvCacheDtype(dtype));
            closing.add(w::close);
        }
        RemoteAttention remote = RemoteAttention.create(zk, cluster, fingerprint, CHECKPOINT.config(),
                RemoteAttention.Options.defaults().withDeadline(Duration.ofSeconds(20)).withKvCacheDtype(dtype)
                        .withMtpLayer(true));
        closing.add(remote);
        assertTrue(remote.awaitWorkers(count, Duration.ofSeconds(20)));
        return remote;
    }

    /** tiny-v3 drafting with its MTP layer, attention on {@code attention}, experts here. */
    private static Transformer engine(ExternalAttention attention) {
        return new Transformer(CHECKPOINT.config(), CHECKPOINT, LocalExperts.all(CHECKPOINT.config(), CHECKPOINT),
                attention).enableMtp();
    }

    /**
     * Chained drafts (two a step), batched with a prompt prefilled in chunks of 5 on the other worker,
     * are each the MTP layer's prediction; then a prompt restored from blocks kept on its worker drafts
     * as well: the blocks hold its MTP layer.
     */
    @Test
    void everyDraftIsTheMtpLayersPredictionChainedBatchedAndAfterAPrefixHit() throws Exception {
        Transformer model = engine(attentionWorkers(2));
        assertEquals(model.config().numHiddenLayers() + 1, model.cacheLayers());
        String pattern = "ABARBAAR";
        int[] a = prompt(23, 11);
        int[] b = prompt(8, 12);
        long keptA = 2 * count(pattern, 'A') + count(pattern, 'B');
        long[] batched = counts(MtpScripts.run(model, new SchedulerOptions(4, 8, 5).withSpeculation(PromptLookup.mtp(2, 0)),
                List.of(new MtpScripts.Scripted(a, chainedScript(a, pattern)),
                        new MtpScripts.Scripted(b, chainedScript(b, "BAR")))));
        assertArrayEquals(new long[] {2L * (pattern.length() + 3), keptA + 3}, batched);

        String one = "AARARRAAAR";
        int[] prompt = prompt(70, 3); // whole blocks to keep
        int[] script = script(prompt, one);
        SchedulerOptions withPrefixes = new SchedulerOptions(4, 8, 256, 64L << 20).withSpeculation(PromptLookup.mtp(0));
        Scheduler s = MtpScripts.inTurn(model, withPrefixes,
                List.of(new MtpScripts.Scripted(prompt, script), new MtpScripts.Scripted(prompt, script)));
        assertEquals(2L * one.length(), s.draftTokens());
        assertEquals(2 * count(one, 'A'), s.acceptedDrafts(), "a draft after the prefix hit was not the MTP layer's");
        assertTrue(s.prefixCache().hitTokens() >= 64, "the second round did not start from kept blocks: "
                + s.prefixCache().hitTokens() + " tokens");
    }

    /**
     * A sequence that ends leaves blocks on its worker up to its last step's positions, whose MTP rows
     * that step's pass wrote before the cache was freed there: the next turn starts from all of them and
     * drafts what the MTP layer predicts.
     */
    @Test
    void theNextTurnStartsFromTheBlocksAnEndedSequenceLeft() throws Exception {
        Transformer model = engine(attentionWorkers(1));
        int[] prompt = prompt(57, 6);
        int[] script = script(prompt, "AAAA"); // 9 tokens; the last step keeps its draft: positions 63 and 64
        int[] next = java.util.Arrays.copyOf(prompt, prompt.length + script.length + 1); // the answer, and one more token
        System.arraycopy(script, 0, next, prompt.length, script.length);
        next[next.length - 1] = 5;
        int[] nextScript = script(next, "AARA");
        Scheduler s = MtpScripts.inTurn(model, new SchedulerOptions(4, 8, 256, 64L << 20).withSpeculation(PromptLookup.mtp(0)),
                List.of(new MtpScripts.Scripted(prompt, script), new MtpScripts.Scripted(next, nextScript)));
        assertEquals(64, s.prefixCache().hitTokens(), "the prompt's 48 positions and the answer's to 64");
        assertEquals(8, s.draftTokens());
        assertEquals(4 + 3, s.acceptedDrafts());
    }

    /**
     * Greedy and seeded sampled generations through attention workers are those without drafts in process;
     * also with two-batch overlap, which splits their steps of two sequences (drafts and all) in two.
     */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void generationsAreThoseWithoutDraftsInProcess(boolean overlap) throws Exception {
        Transformer model = engine(attentionWorkers(2)).twoBatchOverlap(overlap);
        Transformer plain = Transformer.load(CHECKPOINT);
        for (SamplingParams p : List.of(
                SamplingParams.builder().temperature(0).maxTokens(24).ignoreEos(true).build(),
                SamplingParams.builder().temperature(0.8).seed(5).maxTokens(24).ignoreEos(true).build())) {
            List<int[]> prompts = List.of(prompt(30, 4), prompt(12, 5));
            List<GenerationResult> expected = generate(plain, new SchedulerOptions(4, 8, 7), prompts, p);
            List<GenerationResult> drafted = generate(model,
                    new SchedulerOptions(4, 8, 7).withSpeculation(PromptLookup.mtp(2, 0)), prompts, p);
            for (int i = 0; i < prompts.size(); i++) {
                assertArrayEquals(expected.get(i).tokenIds(), drafted.get(i).tokenIds(), "prompt " + i);
            }
        }
    }

    /** So are they with bf16 caches on the workers (the MTP layer's bf16 too), against bf16 caches in process. */
    @Test
    void withBf16CachesTheyAreThoseWithoutDraftsInProcess() throws Exception {
        Transformer model = engine(attentionWorkers(1, KvCacheDtype.BF16)).kvCacheDtype(KvCacheDtype.BF16);
        assertEquals(KvCacheDtype.BF16, model.kvCacheDtype());
        Transformer plain = Transformer.load(CHECKPOINT).kvCacheDtype(KvCacheDtype.BF16);
        SamplingParams p = SamplingParams.builder().temperature(0).maxTokens(24).ignoreEos(true).build();
        List<int[]> prompts = List.of(prompt(40, 7), prompt(12, 8));
        List<GenerationResult> expected = generate(plain, new SchedulerOptions(4, 8, 7), prompts, p);
        List<GenerationResult> drafted = generate(model,
                new SchedulerOptions(4, 8, 7, 64L << 20).withSpeculation(PromptLookup.mtp(2, 0)), prompts, p);
        for (int i = 0; i < prompts.size(); i++) {
            assertArrayEquals(expected.get(i).tokenIds(), drafted.get(i).tokenIds(), "prompt " + i);
        }
    }

    /**
     * An attention worker lost during the MTP layer's pass ends only the sequences it held, with its
     * status; the others take the pass again and go on drafting what the MTP layer predicts.
     */
    @Test
    void aWorkerLostInTheMtpPassEndsOnlyItsSequences() throws Exception {
        RemoteAttention remote = attentionWorkers(2);
        int mtpLayer = CHECKPOINT.config().numHiddenLayers();
        AtomicInteger mtpCalls = new AtomicInteger();
        // The fifth MTP pass over both sequences: the first one's worker "fails" after every worker answered.
        ExternalAttention failing = new Delegating(remote) {
            @Override
            public void forward(int layer, float[] x, int rows, List<SequenceRows> sequences, float[] y) {
                super.forward(layer, x, rows, sequences, y);
                if (layer == mtpLayer && sequences.size() == 2 && mtpCalls.incrementAndGet() == 5) {
                    KvCache lost = sequences.getFirst().cache();
                    throw new AttentionUnavailableException(Status.UNAVAILABLE.withDescription("attention worker failed"),
                            Map.of(lost, Status.UNAVAILABLE.withDescription("attention worker failed (test)")));
                }
            }
        };
        Transformer model = engine(failing);
        // Every token the MTP layer's prediction: every draft is kept while the drafts are right.
        int[] a = prompt(20, 21);
        int[] b = prompt(9, 22);
        List<MtpScripts.Scripted> tasks = List.of(new MtpScripts.Scripted(a, script(a, "M".repeat(12))),
                new MtpScripts.Scripted(b, script(b, "M".repeat(12))));
        Scheduler s = new Scheduler(model, new SchedulerOptions(4, 8, 256).withSpeculation(PromptLookup.mtp(0)));
        try (s) {
            tasks.forEach(s::submit);
            s.start();
            for (MtpScripts.Scripted t : tasks) {
                assertTrue(t.done.await(60, TimeUnit.SECONDS));
            }
        }
        assertEquals(5, mtpCalls.get());
        List<MtpScripts.Scripted> failed = tasks.stream().filter(t -> t.failure != null).toList();
        assertEquals(1, failed.size(), "only the lost worker's sequence ends");
        assertEquals(Status.Code.UNAVAILABLE, Status.fromThrowable(failed.getFirst().failure).getCode());
        MtpScripts.Scripted other = tasks.stream().filter(t -> t.failure == null).findFirst().orElseThrow();
        other.await();
        assertNull(other.failure);
        assertTrue(s.draftTokens() > 0);
        assertEquals(s.draftTokens(), s.acceptedDrafts(), "a draft after the pass ran again was not the MTP layer's");
    }

    /** Another ExternalAttention's calls, all passed on. */
    private static class Delegating implements ExternalAttention {
        private final ExternalAttention d;

        Delegating(ExternalAttention d) {
            this.d = d;
        }

        @Override
        public KvCache newCache() {
            return d.newCache();
        }

        @Override
        public KvCacheDtype kvCacheDtype() {
            return d.kvCacheDtype();
        }

        @Override
        public boolean holdsMtpLayer() {
            return d.holdsMtpLayer();
        }

        @Override
        public void forward(int layer, float[] x, int rows, List<SequenceRows> sequences, float[] y) {
            d.forward(layer, x, rows, sequences, y);
        }

        @Override
        public long kvCacheBudget() {
            return d.kvCacheBudget();
        }

        @Override
        public List<? extends KvPool> kvPools() {
            return d.kvPools();
        }

        @Override
        public PrefixStore prefixStore(long bytes) {
            return d.prefixStore(bytes);
        }
    }
}
