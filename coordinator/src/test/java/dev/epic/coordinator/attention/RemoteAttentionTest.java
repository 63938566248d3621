package dev.epic.coordinator.attention;

import static dev.epic.kernels.VectorOps.argmax;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.attention.AttentionWorker;
import dev.epic.coordinator.scheduler.GenerationTask;
import dev.epic.coordinator.scheduler.LogitsTask;
import dev.epic.coordinator.scheduler.PromptLookup;
import dev.epic.coordinator.scheduler.Scheduler;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.SequenceChunk;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.text.generate.Delta;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import io.grpc.Status;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
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
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * RemoteAttention against real attention workers (gRPC over loopback, real ZooKeeper) holding the
 * golden checkpoints' attention: steps mixing prefill chunks and decode give the in-process
 * engine's logits bit for bit; a failed worker loses only its sequences; full or missing workers
 * are refused per sequence.
 */
class RemoteAttentionTest {
    private static TestingServer zkServer;
    private static CuratorFramework zk;
    private final List<AttentionWorker> workers = new ArrayList<>();
    private final List<AutoCloseable> closing = new ArrayList<>();
    private static int clusters;
    private static final Duration BACKOFF = Duration.ofMillis(300);
    private static final RemoteAttention.Options OPTIONS =
            RemoteAttention.Options.defaults().withDeadline(Duration.ofSeconds(20)).withDeadBackoff(BACKOFF);

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

    /** A fresh cluster name with {@code count} attention workers for model {@code dir}, and its RemoteAttention. */
    private RemoteAttention cluster(Path dir, int count, int maxSequences) throws Exception {
        return cluster(dir, count, maxSequences, AttentionWorker.defaultKvCacheBytes());
    }

    private RemoteAttention cluster(Path dir, int count, int maxSequences, long kvCacheBytes) throws Exception {
        return cluster(dir, count, maxSequences, kvCacheBytes, KvCacheDtype.FP32);
    }

    private RemoteAttention cluster(Path dir, int count, int maxSequences, long kvCacheBytes, KvCacheDtype dtype)
            throws Exception {
        String cluster = "attention-test-" + clusters++;
        Checkpoint ck = Checkpoint.open(dir);
        closing.add(ck);
        for (int i = 0; i < count; i++) {
            workers.add(AttentionWorker.start(AttentionLayers.load(ck.config(), ck), CheckpointFingerprint.of(dir),
                    new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster, "a-" + i,
                            maxSequences, 4000, 200, 0, kvCacheBytes).withKvCacheDtype(dtype)));
        }
        RemoteAttention remote = RemoteAttention.create(zk, cluster, CheckpointFingerprint.of(dir),
                ck.config(), OPTIONS.withKvCacheDtype(dtype));
        closing.add(remote);
        assertTrue(remote.awaitWorkers(count, Duration.ofSeconds(20)));
        return remote;
    }

    /** KV cache bytes of one position of tiny-v3. */
    private static final long TINY_POSITION_BYTES =
            dev.epic.model.HeapKvCache.bytesPerPosition(dev.epic.model.config.ModelConfig.load(TestData.model("tiny-v3")));

    /** tiny-v3 with its attention on two workers with room for {@code first} and {@code second} positions. */
    private Transformer engineOnTwoWorkers(int first, int second) throws Exception {
        Path dir = TestData.model("tiny-v3");
        RemoteAttention attention = cluster(dir, 1, 16, first * TINY_POSITION_BYTES);
        addBigWorker(dir, attention, second * TINY_POSITION_BYTES);
        return engine(dir, attention);
    }

    /** Adds a worker "a-big" with {@code kvCacheBytes} to the last cluster made, and waits until {@code remote} sees both. */
    private void addBigWorker(Path dir, RemoteAttention remote, long kvCacheBytes) throws Exception {
        Checkpoint ck = Checkpoint.open(dir);
        closing.add(ck);
        workers.add(AttentionWorker.start(AttentionLayers.load(ck.config(), ck), CheckpointFingerprint.of(dir),
                new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), "attention-test-" + (clusters - 1),
                        "a-big", 16, 4000, 200, 0, kvCacheBytes)));
        assertTrue(remote.awaitWorkers(2, Duration.ofSeconds(20)));
    }

    /** Submits a LogitsTask of {@code steps} per prompt to {@code s}, then starts it: they join together. */
    private static List<LogitsTask.Result> together(Scheduler s, int[][] prompts, int steps) throws Exception {
        List<LogitsTask> tasks = new ArrayList<>();
        for (int[] p : prompts) {
            tasks.add(new LogitsTask(p, steps));
            s.submit(tasks.getLast());
        }
        s.start();
        List<LogitsTask.Result> out = new ArrayList<>();
        for (LogitsTask t : tasks) {
            out.add(t.result().get(60, TimeUnit.SECONDS));
        }
        return out;
    }

    private Transformer engine(Path dir, RemoteAttention remote) {
        Checkpoint ck = Checkpoint.open(dir);
        closing.add(ck);
        ModelConfig c = ck.config();
        return new Transformer(c, ck, LocalExperts.all(c, ck), remote);
    }

    /**
     * Also with bf16 caches on the workers, against the in-process engine's bf16 caches, and with two-batch
     * overlap (each micro-batch's attention alongside the other's experts).
     */
    @ParameterizedTest
    @CsvSource({"tiny-v3, FP32, false", "tiny-v3-fp8, FP32, false", "tiny-v3, BF16, false", "tiny-v3, FP32, true"})
    void mixedStepsMatchTheInProcessEngineBitForBit(String model, KvCacheDtype dtype, boolean overlap) throws Exception {
        Path dir = TestData.model(model);
        Transformer remote = engine(dir, cluster(dir, 2, 16, AttentionWorker.defaultKvCacheBytes(), dtype))
                .kvCacheDtype(dtype).twoBatchOverlap(overlap);
        Transformer local = engine(dir, null).kvCacheDtype(dtype);
        KvCache[] r = {remote.newCache(), remote.newCache(), remote.newCache()};
        KvCache[] l = {local.newCache(), local.newCache(), local.newCache()};
        int[][] prompts = {{5, 17, 4, 99, 1000}, {7, 3, 250, 11, 42, 8, 1500}, {600, 601, 602, 603, 604, 605}};
        // Step 1: two prompts' first chunks. Step 2: A decodes, B's second chunk, C's whole prompt.
        List<float[]> first = check(remote, local, r, l, new int[][] {prompts[0], {7, 3, 250}, null});
        int nextA = argmax(first.get(0));
        List<float[]> second = check(remote, local, r, l, new int[][] {{nextA}, {11, 42, 8, 1500}, prompts[2]});
        int[] next = {argmax(second.get(0)), argmax(second.get(1)), argmax(second.get(2))};
        for (int step = 0; step < 6; step++) {
            List<float[]> out = check(remote, local, r, l, new int[][] {{next[0]}, {next[1]}, {next[2]}});
            for (int s = 0; s < 3; s++) {
                next[s] = argmax(out.get(s));
            }
        }
        assertTrue(workers.get(0).cachedSequences() > 0 && workers.get(1).cachedSequences() > 0,
                "the three sequences are spread over both workers");
        assertEquals(3, workers.get(0).cachedSequences() + workers.get(1).cachedSequences());
        for (KvCache c : r) {
            c.release();
        }
        for (int i = 0; i < 100 && workers.get(0).cachedSequences() + workers.get(1).cachedSequences() > 0; i++) {
            Thread.sleep(50);
        }
        assertEquals(0, workers.get(0).cachedSequences() + workers.get(1).cachedSequences(), "released on the workers");
    }

    /**
     * A step as the scheduler runs it: again while an attention worker failure only moved first
     * chunks (nothing lost); a bounded number of times.
     */
    private static List<float[]> stepAllowingMoves(Transformer engine, java.util.function.Supplier<List<SequenceChunk>> chunks) {
        for (int attempt = 0; ; attempt++) {
            try {
                return engine.step(chunks.get());
            } catch (AttentionUnavailableException e) {
                if (!e.lost().isEmpty() || attempt >= RemoteAttention.MAX_MOVES) {
                    throw e;
                }
            }
        }
    }

    /** One step of the sequences with non-null tokens on both engines; the logits must be the same bits. */
    private static List<float[]> check(Transformer remote, Transformer local, KvCache[] r, KvCache[] l, int[][] tokens) {
        List<SequenceChunk> rc = new ArrayList<>();
        List<SequenceChunk> lc = new ArrayList<>();
        for (int s = 0; s < tokens.length; s++) {
            if (tokens[s] != null) {
                rc.add(SequenceChunk.next(r[s], tokens[s]));
                lc.add(SequenceChunk.next(l[s], tokens[s]));
            }
        }
        List<float[]> want = local.step(lc);
        List<float[]> got = remote.step(rc);
        for (int i = 0; i < want.size(); i++) {
            assertArrayEquals(want.get(i), got.get(i), "sequence " + i);
        }
        List<float[]> out = new ArrayList<>();
        for (int s = 0, i = 0; s < tokens.length; s++) {
            out.add(tokens[s] != null ? got.get(i++) : null);
        }
        return out;
    }

    @Test
    void aKilledWorkerLosesOnlyItsSequencesAndNewOnesMoveOn() throws Exception {
        Path dir = TestData.model("tiny-v3");
        RemoteAttention attention = cluster(dir, 2, 16);
        Transformer remote = engine(dir, attention);
        Transformer local = engine(dir, null);
        KvCache a = remote.newCache();
        KvCache b = remote.newCache();
        KvCache lb = local.newCache();
        remote.step(List.of(SequenceChunk.next(a, 5, 17, 4), SequenceChunk.next(b, 9, 8, 7)));
        local.step(List.of(SequenceChunk.next(lb, 9, 8, 7)));
        AttentionEndpoint ofA = ((RemoteCache) a).endpoint;
        assertNotSame(ofA, ((RemoteCache) b).endpoint, "two sequences go to two workers");
        AttentionWorker dead = workers.stream().filter(w -> ofA.announcement().getWorkerId().equals(w.workerId()))
                .findFirst().orElseThrow();
        dead.kill(); // connections break; its ZooKeeper node stays, as a crashed process's does for a while

        // A fresh sequence lands on the dead worker (fewest sequences) and is placed again, not failed.
        KvCache c = remote.newCache();
        KvCache lc = local.newCache();
        AttentionUnavailableException e = assertThrows(AttentionUnavailableException.class,
                () -> remote.step(List.of(SequenceChunk.next(a, 3), SequenceChunk.next(b, 3), SequenceChunk.next(c, 1, 2))));
        assertEquals(Set.of(a), e.lost(), "only the sequence with positions on the dead worker is lost");
        assertEquals(Status.Code.UNAVAILABLE, e.failureOf(a).getStatus().getCode());
        assertTrue(e.failureOf(a).getStatus().getDescription().contains("attention worker"), e.getMessage());

        // The step runs again without it: the others go on as if nothing happened, c on the survivor
        // (if c was placed on the dead worker, it first moves, as the scheduler's rerun would do).
        List<float[]> want = local.step(List.of(SequenceChunk.next(lb, 3), SequenceChunk.next(lc, 1, 2)));
        List<float[]> got = stepAllowingMoves(remote, () -> List.of(SequenceChunk.next(b, 3), SequenceChunk.next(c, 1, 2)));
        assertArrayEquals(want.get(0), got.get(0));
        assertArrayEquals(want.get(1), got.get(1));
        assertEquals(((RemoteCache) b).endpoint, ((RemoteCache) c).endpoint);
        assertThrows(AttentionUnavailableException.class, () -> remote.step(List.of(SequenceChunk.next(a, 3))));

        // After its failure backoff the dead worker (still registered) looks free again: a new
        // sequence placed there moves to the survivor, with nothing lost.
        Thread.sleep(BACKOFF.toMillis() + 100);
        KvCache d = remote.newCache();
        KvCache ld = local.newCache();
        AttentionUnavailableException moved = assertThrows(AttentionUnavailableException.class,
                () -> remote.step(List.of(SequenceChunk.next(d, 4, 5))));
        assertEquals(Set.of(), moved.lost());
        assertArrayEquals(local.step(List.of(SequenceChunk.next(ld, 4, 5))).getFirst(),
                remote.step(List.of(SequenceChunk.next(d, 4, 5))).getFirst());
        assertEquals(((RemoteCache) b).endpoint, ((RemoteCache) d).endpoint);
    }

    /**
     * A worker whose KV budget holds 32 positions: two sequences of 16 fit, and neither can grow. The
     * one that must grow is reported without room, with the sequences holding caches on its worker (not
     * a new sequence refused in the same message, which holds nothing there), and nothing is written;
     * once the other is released (told with the next message, so no race with the separate Release
     * call) it grows.
     */
    @Test
    void growthWithoutRoomIsReportedWithTheSequencesSharingTheWorker() throws Exception {
        Path dir = TestData.model("tiny-v3");
        Transformer local = engine(dir, null);
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(local.config());
        Transformer remote = engine(dir, cluster(dir, 1, 16, 32 * perPosition));
        KvCache a = remote.newCache();
        KvCache b = remote.newCache();
        KvCache c = remote.newCache();
        KvCache la = local.newCache();
        int[] sixteen = java.util.stream.IntStream.range(0, 16).map(i -> 5 + i).toArray();
        remote.step(List.of(SequenceChunk.next(a, sixteen), SequenceChunk.next(b, 3, 4)));
        local.step(List.of(SequenceChunk.next(la, sixteen)));
        AttentionUnavailableException e = assertThrows(AttentionUnavailableException.class,
                () -> remote.step(List.of(SequenceChunk.next(a, 7), SequenceChunk.next(b, 8), SequenceChunk.next(c, 9))));
        assertEquals(Set.of(), e.lost());
        assertEquals(Set.of(a), e.noRoom(), "the new one is placed again (a move), not without room yet");
        assertEquals(Set.of(a, b), e.sharingWorkerWith(a), "the caches the worker holds, not the new one");
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.failureOf(a).getStatus().getCode());
        assertTrue(e.failureOf(a).getStatus().getDescription().contains("--kv-cache-mb"), e.toString());
        assertEquals(16, a.length(), "nothing committed");
        b.release();
        assertArrayEquals(local.step(List.of(SequenceChunk.next(la, 7))).getFirst(),
                remote.step(List.of(SequenceChunk.next(a, 7))).getFirst());
        assertEquals(1, workers.getFirst().cachedSequences());
    }

    /**
     * A sequence alone on its worker that outgrows the worker's budget has nothing to wait for: it
     * ends RESOURCE_EXHAUSTED naming the flag, within one step, and the engine goes on.
     */
    @Test
    void aSequenceAloneThatOutgrowsItsWorkerEndsResourceExhausted() throws Exception {
        Path dir = TestData.model("tiny-v3");
        Transformer local = engine(dir, null);
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(local.config());
        Transformer remote = engine(dir, cluster(dir, 1, 16, 20 * perPosition));
        try (Scheduler scheduler = new Scheduler(remote, new SchedulerOptions(4, 4, 256)).start()) {
            LogitsTask t = new LogitsTask(new int[] {5, 17, 4}, 30);
            scheduler.submit(t);
            ExecutionException e = assertThrows(ExecutionException.class, () -> t.result().get(60, TimeUnit.SECONDS));
            Status s = Status.fromThrowable(e.getCause());
            assertEquals(Status.Code.RESOURCE_EXHAUSTED, s.getCode(), s.toString());
            assertTrue(s.getDescription().contains("--kv-cache-mb"), s.getDescription());
            assertEquals(0, scheduler.preemptions());
            LogitsTask small = new LogitsTask(new int[] {5, 17, 4}, 5); // fits: the engine goes on
            scheduler.submit(small);
            assertEquals(6, small.result().get(60, TimeUnit.SECONDS).argmax().length, "the prefill's token and five more");
        }
    }

    /** Workers announce their KV budgets; the longest sequence every one holds bounds default max_tokens. */
    @Test
    void theSmallestAnnouncedBudgetGivesTheLongestSequence() throws Exception {
        Path dir = TestData.model("tiny-v3");
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(engine(dir, null).config());
        RemoteAttention remote = cluster(dir, 1, 16, 40 * perPosition + 7);
        assertEquals(40, remote.maxSequencePositions(perPosition));
        addBigWorker(dir, remote, 1000 * perPosition);
        assertEquals(40, remote.maxSequencePositions(perPosition), "the smaller of 40 and 1000");
    }

    /**
     * The scheduler accounts for the attention worker's announced budget as for its own heap's: five
     * sequences of up to 43 positions on a worker with room for 100 are admitted and preempted
     * exactly as with the caches in process under the same budget, so the worker never has to refuse
     * one, and every sequence gives the tokens it gives in process. (Learning the room from refusals
     * instead preempted about three times as often in a soak.)
     */
    /**
     * Speculative decoding with the caches on an attention worker: the rejected drafts' positions
     * there are written over by the next step, so the greedy tokens are those of the in-process
     * engine without drafts.
     */
    @Test
    void draftsRolledBackOnAWorkerLeaveTheTokensAsInProcess() throws Exception {
        Path dir = TestData.model("tiny-v3");
        int[] unit = {17, 301, 44, 1020, 5, 77, 930};
        int[] prompt = new int[unit.length * 5];
        for (int i = 0; i < prompt.length; i++) {
            prompt[i] = unit[i % unit.length];
        }
        int[] expected = greedyTokens(new Scheduler(engine(dir, null), new SchedulerOptions(4, 4, 256)), prompt, 40);
        Scheduler remote = new Scheduler(engine(dir, cluster(dir, 1, 16)),
                new SchedulerOptions(4, 4, 256).withSpeculation(new PromptLookup(4, 1, 3)));
        assertArrayEquals(expected, greedyTokens(remote, prompt, 40));
        assertTrue(remote.acceptedDrafts() > 0 && remote.acceptedDrafts() < remote.draftTokens(),
                "drafts both kept and rolled back: " + remote.acceptedDrafts() + " of " + remote.draftTokens());
    }

    /** The greedy completion of {@code prompt} on {@code s} (started and closed here). */
    private static int[] greedyTokens(Scheduler s, int[] prompt, int maxTokens) throws Exception {
        try (s) {
            SamplingParams p = SamplingParams.builder().temperature(0).maxTokens(maxTokens).ignoreEos(true).build();
            GenerationResult.Accumulator all = new GenerationResult.Accumulator();
            CompletableFuture<GenerationResult> done = new CompletableFuture<>();
            s.submit(new GenerationTask(prompt, new Generation(Tokenizer.deepSeekV3(), prompt, p), new GenerationTask.Sink() {
                @Override
                public void delta(Delta d) {
                    all.add(d);
                    if (d.finished()) {
                        done.complete(all.build());
                    }
                }

                @Override
                public void cancelled(Delta last) {
                    done.completeExceptionally(new AssertionError("cancelled"));
                }

                @Override
                public void failed(Throwable error) {
                    done.completeExceptionally(error);
                }
            }));
            s.start();
            return done.get(60, TimeUnit.SECONDS).tokenIds();
        }
    }

    @Test
    void theSchedulerKeepsWithinTheWorkersBudgetAsWithItsOwn() throws Exception {
        Path dir = TestData.model("tiny-v3");
        Transformer local = engine(dir, null);
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(local.config());
        long budget = 100 * perPosition;
        Transformer remote = engine(dir, cluster(dir, 1, 16, budget));
        int[][] prompts = {{5, 17, 4}, {9, 8, 7}, {1, 2, 3}, {40, 41, 42}, {77, 78, 79}};
        int steps = 40;
        List<LogitsTask.Result> inProcess = new ArrayList<>();
        long localPreemptions;
        try (Scheduler s = new Scheduler(local, new SchedulerOptions(8, 8, 256).withKvCacheBytes(budget))) {
            inProcess.addAll(together(s, prompts, steps));
            localPreemptions = s.preemptions();
        }
        assertTrue(localPreemptions >= 2, "the budget is tight enough to preempt: " + localPreemptions);
        try (Scheduler s = new Scheduler(remote, new SchedulerOptions(8, 8, 256))) {
            assertEquals(budget, s.kvCacheBudget(), "the worker's announced budget");
            List<LogitsTask.Result> results = together(s, prompts, steps);
            for (int i = 0; i < prompts.length; i++) {
                assertArrayEquals(inProcess.get(i).argmax(), results.get(i).argmax(), "prompt " + i);
            }
            assertEquals(localPreemptions, s.preemptions(), "preempted as in process");
        }
        assertEquals(0, workers.getFirst().refusedSequences(), "the worker refused nothing");
    }

    /**
     * A new sequence goes to the worker with the most budget left by the coordinator's count: three
     * sequences of up to 33 positions on workers with room for 40 and 1,000 all go to the large one,
     * which refuses none (taking the worker with fewer sequences, the second would outgrow the small one).
     */
    @Test
    void newSequencesGoWhereTheMostBudgetIsLeft() throws Exception {
        try (Scheduler s = new Scheduler(engineOnTwoWorkers(40, 1000), new SchedulerOptions(8, 8, 256))) {
            assertEquals(1040 * TINY_POSITION_BYTES, s.kvCacheBudget(), "the two budgets added up");
            for (LogitsTask.Result r : together(s, new int[][] {{5, 17, 4}, {5, 17, 5}, {5, 17, 6}}, 30)) {
                assertEquals(31, r.argmax().length);
            }
            assertEquals(0, s.preemptions());
        }
        assertEquals(0, workers.get(0).refusedSequences() + workers.get(1).refusedSequences(), "no worker refused one");
    }

    /**
     * Placement makes room for what a sequence may grow to (prompt + max tokens), not only for what it
     * holds when it starts: A (up to 89 positions) goes to the worker with room for 104, B (18) to the
     * one with room for 100, and then C (59) beside B, where both fit, not beside A, where by their
     * first reservations (16 positions each) there was more room. Nothing is refused or preempted.
     */
    @Test
    void placementMakesRoomForWhatASequenceMayReach() throws Exception {
        try (Scheduler s = new Scheduler(engineOnTwoWorkers(104, 100), new SchedulerOptions(8, 8, 256))) {
            List<LogitsTask> tasks = List.of(new LogitsTask(new int[] {5, 17, 4}, 86),
                    new LogitsTask(new int[] {5, 17, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, 6),
                    new LogitsTask(new int[] {5, 17, 6}, 56));
            tasks.forEach(s::submit);
            s.start();
            for (LogitsTask t : tasks) {
                t.result().get(60, TimeUnit.SECONDS);
            }
            assertEquals(0, s.preemptions());
        }
        assertEquals(0, workers.get(0).refusedSequences() + workers.get(1).refusedSequences(), "no worker refused one");
    }

    /**
     * Each worker's own budget counts, not only their sum: three sequences of up to 43 positions on
     * two workers with room for 60 each. Two share a worker, and when their caches double to 32
     * positions they would outgrow it though the sum of the budgets (120) has room. The scheduler
     * preempts the later of the two before the step, the worker refuses nothing, and it rejoins once
     * a worker has room for it. Every sequence gives the tokens it gives in process.
     */
    @Test
    void aFullWorkerPreemptsItsLatestThoughAnotherHasRoom() throws Exception {
        Path dir = TestData.model("tiny-v3");
        int[][] prompts = {{5, 17, 4}, {9, 8, 7}, {1, 2, 3}};
        int steps = 40;
        List<LogitsTask.Result> inProcess;
        try (Scheduler s = new Scheduler(engine(dir, null), new SchedulerOptions(8, 8, 256))) {
            inProcess = together(s, prompts, steps);
        }
        try (Scheduler s = new Scheduler(engineOnTwoWorkers(60, 60), new SchedulerOptions(8, 8, 256))) {
            List<LogitsTask.Result> results = together(s, prompts, steps);
            for (int i = 0; i < prompts.length; i++) {
                assertArrayEquals(inProcess.get(i).argmax(), results.get(i).argmax(), "prompt " + i);
            }
            assertTrue(s.preemptions() >= 1, "the shared worker was full: " + s.preemptions());
        }
        assertEquals(0, workers.get(0).refusedSequences() + workers.get(1).refusedSequences(), "no worker refused one");
    }

    /**
     * The scheduler answers a worker without room by preempting, not failing: two sequences of up to
     * 30 positions on a worker with room for 40. The later one is preempted when the caches must grow,
     * rejoins once the earlier has finished, and both give the logits they give alone (the recomputed
     * positions within the chunked-prefill tolerance) and the same greedy tokens.
     */
    @Test
    void theSchedulerPreemptsForAWorkerWithoutRoom() throws Exception {
        Path dir = TestData.model("tiny-v3");
        Transformer local = engine(dir, null);
        long perPosition = dev.epic.model.HeapKvCache.bytesPerPosition(local.config());
        Transformer remote = engine(dir, cluster(dir, 1, 16, 40 * perPosition));
        int[][] prompts = {{5, 17, 4}, {9, 8, 7, 6}};
        int steps = 26;
        List<LogitsTask.Result> alone = new ArrayList<>();
        try (Scheduler one = new Scheduler(local, new SchedulerOptions(1, 1, 256)).start()) {
            for (int[] p : prompts) {
                LogitsTask t = new LogitsTask(p, steps);
                one.submit(t);
                alone.add(t.result().get(60, TimeUnit.SECONDS));
            }
        }
        try (Scheduler scheduler = new Scheduler(remote, new SchedulerOptions(4, 4, 256))) {
            List<LogitsTask.Result> results = together(scheduler, prompts, steps);
            for (int i = 0; i < prompts.length; i++) {
                LogitsTask.Result r = results.get(i);
                assertArrayEquals(alone.get(i).argmax(), r.argmax(), "prompt " + i);
                for (int k = 0; k < r.logits().size(); k++) {
                    float d = dev.epic.model.Golden.maxAbsDiff(alone.get(i).logits().get(k), r.logits().get(k));
                    assertTrue(d <= dev.epic.model.Golden.LOGIT_TOL, "prompt " + i + " step " + k + ": " + d);
                }
            }
            assertEquals(1, scheduler.preemptions());
            assertEquals(2, scheduler.peakBatch());
        }
        for (int attempt = 0; workers.getFirst().cachedSequences() > 0; attempt++) {
            assertTrue(attempt < 100, "the worker still holds " + workers.getFirst().cachedSequences() + " caches");
            Thread.sleep(50);
        }
    }

    /** Also with two-batch overlap, where a micro-batch's attention fails inside the other's experts call. */
    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void theSchedulerFailsOnlyTheDeadWorkersSequencesAndFinishesTheRest(boolean overlap) throws Exception {
        Path dir = TestData.model("tiny-v3");
        Transformer remote = engine(dir, cluster(dir, 2, 16)).twoBatchOverlap(overlap);
        Transformer local = engine(dir, null);
        int steps = 1500;
        int[][] prompts = {{5, 17, 4}, {9, 8, 7, 6}, {100, 200}, {31, 41, 59, 26, 53}};
        List<LogitsTask> tasks = new ArrayList<>();
        try (Scheduler scheduler = new Scheduler(remote, new SchedulerOptions(4, 4, 256))) {
            for (int[] p : prompts) {
                LogitsTask t = new LogitsTask(p, steps);
                tasks.add(t);
                scheduler.submit(t);
            }
            scheduler.start();
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
            while (scheduler.steps() < 3 && System.nanoTime() < deadline) {
                Thread.sleep(1);
            }
            assertTrue(scheduler.steps() >= 3, "the scheduler did not take three steps");
            int onDead = workers.get(0).cachedSequences();
            assertEquals(2, onDead, "four sequences spread two and two");
            workers.get(0).kill();
            int failed = 0;
            for (int i = 0; i < tasks.size(); i++) {
                try {
                    LogitsTask.Result r = tasks.get(i).result().get(60, TimeUnit.SECONDS);
                    // A survivor's logits are the in-process engine's, however the step was re-run.
                    LogitsTask alone = new LogitsTask(prompts[i], steps);
                    try (Scheduler one = new Scheduler(local, new SchedulerOptions(1, 1, 256)).start()) {
                        one.submit(alone);
                        LogitsTask.Result want = alone.result().get(60, TimeUnit.SECONDS);
                        assertArrayEquals(want.argmax(), r.argmax(), "sequence " + i);
                        assertArrayEquals(want.logits().getLast(), r.logits().getLast(), "sequence " + i);
                    }
                } catch (ExecutionException e) {
                    failed++;
                    assertEquals(Status.Code.UNAVAILABLE, Status.fromThrowable(e.getCause()).getCode(), e.toString());
                }
            }
            assertEquals(onDead, failed, "only the dead worker's sequences fail");
        }
    }

    @Test
    void fullWorkersAreResourceExhaustedAndNoWorkerIsUnavailable() throws Exception {
        Path dir = TestData.model("tiny-v3");
        RemoteAttention one = cluster(dir, 1, 1);
        Transformer full = engine(dir, one);
        KvCache a = full.newCache();
        KvCache b = full.newCache();
        full.step(List.of(SequenceChunk.next(a, 5, 6)));
        AttentionUnavailableException e = assertThrows(AttentionUnavailableException.class,
                () -> full.step(List.of(SequenceChunk.next(a, 7), SequenceChunk.next(b, 5))));
        assertEquals(Set.of(), e.lost());
        assertEquals(Set.of(b), e.noRoom(), "no room: the scheduler decides whether it waits or ends");
        assertEquals(Set.of(b), e.sharingWorkerWith(b), "on no worker");
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.failureOf(b).getStatus().getCode());
        full.step(List.of(SequenceChunk.next(a, 7))); // a goes on

        // A second coordinator on the same worker does not know it is full: the worker refuses the
        // new sequence in its answer (it is not taken for dead), and the sequence moves on.
        String name = "attention-test-" + (clusters - 1);
        RemoteAttention second = RemoteAttention.create(zk, name, CheckpointFingerprint.of(dir),
                full.config(), OPTIONS);
        closing.add(second);
        assertTrue(second.awaitWorkers(1, Duration.ofSeconds(20)));
        Transformer other = engine(dir, second);
        Transformer local = engine(dir, null);
        KvCache c = other.newCache();
        AttentionUnavailableException moved = assertThrows(AttentionUnavailableException.class,
                () -> other.step(List.of(SequenceChunk.next(c, 5))));
        assertEquals(Set.of(), moved.lost(), "refused, not lost: it is placed again");
        // No other worker has room: now it fails, RESOURCE_EXHAUSTED.
        AttentionUnavailableException refused = assertThrows(AttentionUnavailableException.class,
                () -> other.step(List.of(SequenceChunk.next(c, 5))));
        assertEquals(Set.of(c), refused.noRoom());
        assertEquals(Status.Code.RESOURCE_EXHAUSTED, refused.failureOf(c).getStatus().getCode());
        full.step(List.of(SequenceChunk.next(a, 8))); // the first coordinator's sequence is untouched

        // With a worker that has room, a refused sequence lands there and runs exactly as in process.
        Checkpoint ck = Checkpoint.open(dir);
        closing.add(ck);
        workers.add(AttentionWorker.start(AttentionLayers.load(ck.config(), ck), CheckpointFingerprint.of(dir),
                new AttentionWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), name, "a-roomy", 4, 4000, 200,
                        0)));
        assertTrue(second.awaitWorkers(2, Duration.ofSeconds(20)));
        KvCache d = other.newCache();
        KvCache ld = local.newCache();
        float[] got;
        try {
            got = other.step(List.of(SequenceChunk.next(d, 5, 6))).getFirst();
        } catch (AttentionUnavailableException first) { // placed on the full one first: moved, nothing lost
            assertEquals(Set.of(), first.lost());
            got = other.step(List.of(SequenceChunk.next(d, 5, 6))).getFirst();
        }
        assertArrayEquals(local.step(List.of(SequenceChunk.next(ld, 5, 6))).getFirst(), got);

        Transformer none = engine(dir, cluster(dir, 0, 1));
        KvCache n = none.newCache();
        AttentionUnavailableException u = assertThrows(AttentionUnavailableException.class,
                () -> none.step(List.of(SequenceChunk.next(n, 5))));
        assertEquals(Status.Code.UNAVAILABLE, u.failureOf(n).getStatus().getCode());
        assertTrue(u.getStatus().getDescription().contains("no live attention worker"), u.getStatus().getDescription());
    }
}
