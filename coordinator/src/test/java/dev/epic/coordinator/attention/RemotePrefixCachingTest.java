package dev.epic.coordinator.attention;

import static dev.epic.coordinator.scheduler.SchedulerTest.check; // the golden prompt's logits and 12 greedy steps
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.attention.AttentionWorker;
import dev.epic.coordinator.scheduler.LogitsTask;
import dev.epic.coordinator.scheduler.PrefixCache;
import dev.epic.coordinator.scheduler.Scheduler;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.Golden;
import dev.epic.model.PrefixStore;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.moe.LocalExperts;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
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
 * Prefix caching with data-parallel attention: real attention workers over gRPC, a real ZooKeeper, the
 * golden prompt of 300 tokens of testdata/tiny-v3 and the reference implementation's logits.
 */
class RemotePrefixCachingTest {
    private static final Path MODEL = TestData.model("tiny-v3");
    private static final int B = PrefixCache.BLOCK;
    private static TestingServer zkServer;
    private static CuratorFramework zk;
    private static int clusters;
    private final List<AttentionWorker> workers = new ArrayList<>();
    private final List<AutoCloseable> closing = new ArrayList<>();
    /** The RemoteAttention of the last engine made. */
    private RemoteAttention remote;

    @BeforeAll
    static void startZk() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        zk.blockUntilConnected();
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
        workers.forEach(AttentionWorker::kill);
        workers.forEach(AttentionWorker::close);
    }

    /** tiny-v3 with its attention on {@code count} workers keeping {@code prefixBytes} of blocks each, experts in process. */
    private Transformer engine(int count, long prefixBytes) throws Exception {
        return engine(MODEL, count, prefixBytes, 16);
    }

    private Transformer engine(int count, long prefixBytes, int maxSequences) throws Exception {
        return engine(MODEL, count, prefixBytes, maxSequences);
    }

    private Transformer engine(Path model, int count, long prefixBytes, int maxSequences) throws Exception {
        return engine(model, count, prefixBytes, maxSequences, AttentionWorker.defaultKvCacheBytes());
    }

    private Transformer engine(Path model, int count, long prefixBytes, int maxSequences, long kvCacheBytes)
            throws Exception {
        String cluster = "prefix-test-" + clusters++;
        Checkpoint ck = Checkpoint.open(model);
        closing.add(ck);
        for (int i = 0; i < count; i++) {
            workers.add(AttentionWorker.start(AttentionLayers.load(ck.config(), ck), CheckpointFingerprint.of(model),
                    new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster, "a-" + i,
                            maxSequences, 4000, 200, 0, kvCacheBytes).withPrefixCacheBytes(prefixBytes)));
        }
        remote = RemoteAttention.create(zk, cluster, CheckpointFingerprint.of(model), ck.config(),
                RemoteAttention.Options.defaults().withDeadline(Duration.ofSeconds(20))
                        .withDeadBackoff(Duration.ofMillis(300)));
        closing.add(remote);
        assertTrue(remote.awaitWorkers(count, Duration.ofSeconds(20)));
        return new Transformer(ck.config(), ck, LocalExperts.all(ck.config(), ck), remote);
    }

    /** Adds an attention worker with the default budgets to {@code cluster}. */
    private void addWorker(String cluster, String id, int maxSequences) throws Exception {
        Checkpoint ck = Checkpoint.open(MODEL);
        closing.add(ck);
        workers.add(AttentionWorker.start(AttentionLayers.load(ck.config(), ck), CheckpointFingerprint.of(MODEL),
                new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster, id, maxSequences, 4000,
                        200, 0, AttentionWorker.defaultKvCacheBytes())));
    }

    private static LogitsTask.Result run(Scheduler s, int[] prompt, int steps) throws Exception {
        return submit(s, prompt, steps).result().get(60, TimeUnit.SECONDS);
    }

    private static LogitsTask submit(Scheduler s, int[] prompt, int steps) {
        LogitsTask t = new LogitsTask(prompt, steps);
        s.submit(t);
        return t;
    }

    /**
     * A prompt that starts like an earlier one goes to the worker keeping that prefix, starts from its
     * blocks there, and gives the reference logits; a finished sequence's prompt and answer are kept
     * too, so the next turn of a chat starts from both.
     */
    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void promptsStartFromBlocksKeptOnTheirWorkerAndGiveTheGoldenLogits(String model) throws Exception {
        Golden.Prompt g = Golden.of(model).prompts().get(4); // 300 tokens, 12 greedy steps
        int[] head = Arrays.copyOf(g.tokens(), 150);
        try (Scheduler s = new Scheduler(engine(TestData.model(model), 2, 64L << 20, 16),
                new SchedulerOptions(4, 4, 64, 64L << 20)).start()) {
            PrefixStore prefixes = s.prefixCache();
            run(s, head, 0);
            assertEquals(0, prefixes.hitTokens());
            assertEquals(150 / B * blockBytes(TestData.model(model)), prefixes.storedBytes(), "its whole blocks, counted here");

            LogitsTask full = submit(s, g.tokens(), 12);
            check(g, full.result().get(60, TimeUnit.SECONDS));
            assertEquals(150 / B * B, prefixes.hitTokens(), "the 150-token head's whole blocks");
            assertEquals(150 / B * B, full.cachedPromptTokens(), "as its usage reports");

            // The next turn: the prompt and 11 answer tokens; the 19th block exists only because the answer was kept.
            int[] next = Arrays.copyOf(g.tokens(), 300 + 11);
            System.arraycopy(g.greedyTokens(), 0, next, 300, 11);
            LogitsTask.Result turn = run(s, next, 1);
            assertEquals(150 / B * B + 19 * B, prefixes.hitTokens());
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[10], turn.logits().get(0)) < Golden.LOGIT_TOL);
            assertEquals(g.greedyTokens()[11], turn.argmax()[0]);
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[11], turn.logits().get(1)) < Golden.LOGIT_TOL);
        }
        assertTrue(workers.stream().anyMatch(w -> w.prefixCacheBytes() > 0), "the blocks live on a worker");
    }

    /**
     * On an attention worker too the kept blocks are the caches' pages, and both the worker's KV budget
     * and the coordinator's count of it take them once: two sequences with the same 300-token prompt and
     * 12 steps, started from its 18 kept blocks, run side by side on a worker whose budget of 313
     * positions holds one whole sequence (312), with the golden logits. The second is counted by what
     * it holds beside the shared pages when it joins, and when it is placed where they are kept. Without
     * prefix caching the second waits for the first.
     */
    @Test
    void sequencesStartedFromBlocksKeptOnAWorkerShareTheirPagesInItsKvBudget() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4); // 300 tokens, 12 greedy steps
        var c = dev.epic.model.config.ModelConfig.load(MODEL);
        long budget = 313 * dev.epic.model.KvCacheDtype.FP32.bytesPerPosition(c);
        for (long prefixBytes : new long[] {64L << 20, 0}) {
            try (Scheduler s = new Scheduler(engine(MODEL, 1, 64L << 20, 16, budget),
                    new SchedulerOptions(4, 4, 512, prefixBytes)).start()) {
                run(s, g.tokens(), 0);
                LogitsTask a = new LogitsTask(g.tokens(), 12);
                LogitsTask b = new LogitsTask(g.tokens(), 12);
                s.submitAll(List.of(a, b));
                check(g, a.result().get(60, TimeUnit.SECONDS));
                check(g, b.result().get(60, TimeUnit.SECONDS));
                assertEquals(0, s.preemptions());
                assertEquals(0, workers.getLast().refusedSequences(), "the worker had room for what it was sent");
                if (prefixBytes > 0) {
                    assertEquals(2 * 288, s.prefixCache().hitTokens(), "both started from the 18 kept blocks");
                    assertEquals(2, s.peakBatch(), "sequences that ran together");
                } else {
                    assertEquals(1, s.peakBatch(), "without shared pages the second cannot join beside the first");
                }
            }
        }
    }

    /** Bytes of one block of {@code model} (every layer). */
    private static long blockBytes(Path model) {
        var c = dev.epic.model.config.ModelConfig.load(model);
        return dev.epic.model.KvBlock.bytes(c.numHiddenLayers(), B, c.kvLoraRank(), c.qkRopeHeadDim(),
                dev.epic.model.KvCacheDtype.FP32);
    }

    /**
     * The worker keeping a prompt's prefix dies: the next request starting like it still gives the
     * reference logits, computed on the other worker (whether the coordinator learned of the death
     * from the broken stream before placing it, or by sending to the dead worker).
     */
    @Test
    void aPrefixKeptOnAWorkerThatDiedIsComputedElsewhere() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        try (Scheduler s = new Scheduler(engine(2, 64L << 20), new SchedulerOptions(4, 4, 64, 64L << 20)).start()) {
            run(s, Arrays.copyOf(g.tokens(), 150), 0);
            // The blocks to keep go with the worker's next message, and the finished cache they are copied
            // from is freed by that message too: until then, the worker holding it is the keeper.
            AttentionWorker keeper = workers.stream().filter(w -> w.cachedSequences() > 0).findFirst().orElseThrow();
            assertEquals(0, keeper.prefixCacheBytes(), "nothing kept there yet");
            keeper.kill(); // its ZooKeeper node stays
            check(g, run(s, g.tokens(), 12));
        }
    }

    /**
     * The worker keeping a prompt's prefix refuses the request that starts from it (another
     * coordinator's sequences fill it): the request starts again from its first token on the other
     * worker and gives the reference logits, where a sequence alone with committed positions would end
     * RESOURCE_EXHAUSTED.
     */
    @Test
    void aRequestRefusedWhereItsPrefixIsKeptRecomputesItElsewhere() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        String cluster = "prefix-test-" + clusters;
        Transformer first = engine(1, 64L << 20, 2); // the keeper: two sequences at most
        try (Scheduler s = new Scheduler(first, new SchedulerOptions(4, 4, 64, 64L << 20)).start()) {
            run(s, Arrays.copyOf(g.tokens(), 150), 0);
            run(s, new int[] {5, 6, 7}, 0); // its message has the keeper keep the blocks and free the first cache
            AttentionWorker keeper = workers.getFirst();
            for (int i = 0; i < 100 && keeper.cachedSequences() > 0; i++) {
                Thread.sleep(20); // the second cache goes by a Release call
            }
            assertEquals(9 * blockBytes(MODEL), keeper.prefixCacheBytes());

            // Another coordinator fills the keeper with two sequences of its own.
            Checkpoint ck = Checkpoint.open(MODEL);
            closing.add(ck);
            RemoteAttention other = RemoteAttention.create(zk, cluster, CheckpointFingerprint.of(MODEL), ck.config(),
                    RemoteAttention.Options.defaults());
            closing.add(other);
            assertTrue(other.awaitWorkers(1, Duration.ofSeconds(20)));
            Transformer otherEngine = new Transformer(ck.config(), ck, LocalExperts.all(ck.config(), ck), other);
            otherEngine.step(List.of(dev.epic.model.SequenceChunk.next(otherEngine.newCache(), new int[] {1, 2}),
                    dev.epic.model.SequenceChunk.next(otherEngine.newCache(), new int[] {3, 4})));
            assertEquals(2, keeper.cachedSequences());

            addWorker(cluster, "a-spare", 16);
            assertTrue(remote.awaitWorkers(2, Duration.ofSeconds(20)));
            LogitsTask full = submit(s, g.tokens(), 12);
            check(g, full.result().get(60, TimeUnit.SECONDS));
            assertEquals(150 / B * B, s.prefixCache().hitTokens(), "it was placed to start from the keeper's blocks");
            assertEquals(0, full.cachedPromptTokens(), "its usage counts what it computed: all of the prompt");
            assertTrue(keeper.refusedSequences() > 0, "and the keeper refused it");
        }
    }

    /** Workers that keep no prefixes (--prefix-cache-mb 0): nothing is kept or restored, and the logits are right. */
    @Test
    void workersWithoutAPrefixBudgetKeepNothing() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        try (Scheduler s = new Scheduler(engine(1, 0), new SchedulerOptions(4, 4, 64, 64L << 20)).start()) {
            run(s, Arrays.copyOf(g.tokens(), 150), 0);
            check(g, run(s, g.tokens(), 12));
            assertEquals(0, s.prefixCache().hitTokens());
            assertEquals(0, s.prefixCache().storedBytes());
        }
        assertEquals(0, workers.get(0).prefixCacheBytes());
    }
}
