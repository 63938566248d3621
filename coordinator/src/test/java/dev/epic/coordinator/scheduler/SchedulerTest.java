package dev.epic.coordinator.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.HeapKvCache;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.moe.LocalExperts;
import dev.epic.text.generate.FinishReason;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import io.grpc.Status;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Continuous batching on the real fp32 engine (testdata/tiny-v3, all experts local). */
public class SchedulerTest {
    private static Checkpoint checkpoint;
    private static Transformer model;
    private static final Tokenizer VOCAB = Tokenizer.deepSeekV3();

    @BeforeAll
    static void load() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
        model = Transformer.load(checkpoint);
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    private static int[] prompt(int seed, int length) {
        SplittableRandom r = new SplittableRandom(seed);
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = 2 + r.nextInt(2000);
        }
        return p;
    }

    private static SamplingParams sampled(long seed, int maxTokens) {
        return SamplingParams.builder().temperature(1.0).topP(0.9).topK(50).seed(seed).maxTokens(maxTokens)
                .ignoreEos(true).build();
    }

    private static GenerationTask task(int[] prompt, SamplingParams p, CollectingSink sink) {
        return new GenerationTask(prompt, new Generation(VOCAB, prompt, p), sink);
    }

    /**
     * A short prompt that arrives while a long one is prefilling gets its share of the prefill budget
     * at once instead of waiting for the long one to be all in: with 16 positions a step, the
     * 1,500-token prompt needs about 94 steps, and the 3-token one is answered while it is at most a
     * few steps in. It used to come after it (the first prefilling sequence took the whole budget).
     */
    @Test
    void aShortPromptIsNotHeldBackByALongOnePrefilling() throws Exception {
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 16)).start()) {
            LogitsTask big = new LogitsTask(prompt(7, 1500), 0);
            s.submit(big);
            for (int attempt = 0; s.steps() < 2; attempt++) {
                assertTrue(attempt < 3000, "the long prompt never started");
                Thread.sleep(10);
            }
            LogitsTask small = new LogitsTask(new int[] {5, 17, 4}, 0);
            s.submit(small);
            small.result().get(60, TimeUnit.SECONDS);
            assertFalse(big.result().isDone(), "the long prompt was still prefilling when the short one was answered");
            assertEquals(1, big.result().get(60, TimeUnit.SECONDS).argmax().length);
        }
    }

    /**
     * An idle-time job (the forward warm-up) runs on the engine thread; a sequence that arrives while
     * it runs waits for it and is then served; a job that throws is logged and the engine goes on.
     */
    @Test
    void idleJobsRunOnTheEngineAndSequencesWaitForThem() throws Exception {
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 16)).start()) {
            CountDownLatch running = new CountDownLatch(1);
            CountDownLatch release = new CountDownLatch(1);
            CompletableFuture<String> thread = new CompletableFuture<>();
            s.runWhenIdle(() -> {
                thread.complete(Thread.currentThread().getName());
                running.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            assertTrue(running.await(30, TimeUnit.SECONDS));
            LogitsTask waiting = new LogitsTask(new int[] {5, 17, 4}, 0);
            s.submit(waiting);
            Thread.sleep(200);
            assertFalse(waiting.result().isDone(), "served while the engine ran the job");
            assertEquals(0, s.steps());
            release.countDown();
            assertEquals(1, waiting.result().get(60, TimeUnit.SECONDS).argmax().length);
            assertTrue(thread.get().startsWith("epic-engine"), thread.get());

            s.runWhenIdle(() -> {
                throw new IllegalStateException("a failed warm-up");
            });
            LogitsTask after = new LogitsTask(new int[] {9, 3}, 0);
            s.submit(after);
            assertEquals(1, after.result().get(60, TimeUnit.SECONDS).argmax().length);
            assertFalse(s.failed());
        }
    }

    @Test
    void batchedTokensEqualOneAtATime() throws Exception {
        int n = 6;
        List<int[]> prompts = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            prompts.add(prompt(i, 3 + 7 * i));
        }
        List<GenerationResult> sequential = new ArrayList<>();
        try (Scheduler one = new Scheduler(model, new SchedulerOptions(1, 8, 256)).start()) {
            for (int i = 0; i < n; i++) {
                CollectingSink sink = new CollectingSink();
                one.submit(task(prompts.get(i), sampled(100 + i, 9 + i), sink));
                sequential.add(sink.done.get(60, TimeUnit.SECONDS));
            }
            assertEquals(1, one.peakBatch());
        }
        // All queued before the engine starts, so the first step already carries every prompt.
        List<CollectingSink> sinks = new ArrayList<>();
        try (Scheduler batched = new Scheduler(model, new SchedulerOptions(n, 8, 256))) {
            for (int i = 0; i < n; i++) {
                CollectingSink sink = new CollectingSink();
                sinks.add(sink);
                batched.submit(task(prompts.get(i), sampled(100 + i, 9 + i), sink));
            }
            batched.start();
            for (int i = 0; i < n; i++) {
                GenerationResult b = sinks.get(i).done.get(60, TimeUnit.SECONDS);
                GenerationResult s = sequential.get(i);
                assertArrayEquals(s.tokenIds(), b.tokenIds(), "sequence " + i);
                assertEquals(s.content(), b.content(), "sequence " + i);
                assertEquals(9 + i, b.tokenIds().length);
                assertEquals(FinishReason.LENGTH, b.finishReason());
            }
            assertEquals(n, batched.peakBatch());
            // 6 prompts in one step, then one step per token of the longest completion.
            assertEquals(1 + (9 + n - 1) - 1, batched.steps());
        }
    }

    /**
     * Exact equality: a row's arithmetic must not depend on the rows batched with it. Three rounds, so
     * both cold (interpreted) and JIT-compiled kernels are compared: rarely taken paths (a batch's last
     * rows) stay cold longer than hot ones and must still round the same way.
     */
    @Test
    void batchedLogitsAreBitIdenticalToOneAtATime() throws Exception {
        List<int[]> prompts = List.of(prompt(11, 1), prompt(12, 9), prompt(13, 40));
        for (int round = 0; round < 3; round++) {
            List<LogitsTask.Result> alone = new ArrayList<>();
            try (Scheduler one = new Scheduler(model, new SchedulerOptions(1, 8, 256)).start()) {
                for (int[] p : prompts) {
                    LogitsTask t = new LogitsTask(p, 6);
                    one.submit(t);
                    alone.add(t.result().get(60, TimeUnit.SECONDS));
                }
            }
            try (Scheduler batched = new Scheduler(model, new SchedulerOptions(8, 8, 256))) {
                List<LogitsTask> tasks = new ArrayList<>();
                for (int[] p : prompts) {
                    tasks.add(new LogitsTask(p, 6));
                    batched.submit(tasks.getLast());
                }
                batched.start();
                for (int i = 0; i < prompts.size(); i++) {
                    LogitsTask.Result r = tasks.get(i).result().get(60, TimeUnit.SECONDS);
                    for (int k = 0; k <= 6; k++) {
                        assertArrayEquals(alone.get(i).logits().get(k), r.logits().get(k), "prompt " + i + " step " + k);
                    }
                }
                assertEquals(prompts.size(), batched.peakBatch());
            }
        }
    }

    @Test
    void chunkedPrefillReproducesGoldenLogits() throws Exception {
        Golden golden = Golden.of("tiny-v3");
        Golden.Prompt longest = golden.prompts().get(4);
        Golden.Prompt other = golden.prompts().get(2);
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 16))) {
            LogitsTask a = new LogitsTask(longest.tokens(), 12);
            LogitsTask b = new LogitsTask(other.tokens(), 12);
            s.submit(a);
            s.submit(b);
            s.start();
            check(longest, a.result().get(60, TimeUnit.SECONDS));
            check(other, b.result().get(60, TimeUnit.SECONDS));
            int chunks = (longest.tokens().length + other.tokens().length + 15) / 16;
            assertTrue(s.steps() >= chunks, "prefill of " + longest.tokens().length + " tokens took " + s.steps()
                    + " steps with a 16-token budget");
        }
    }

    /** The 12 greedy steps after a golden prompt, against the reference logits (Golden.LOGIT_TOL) and tokens. */
    public static void check(Golden.Prompt g, LogitsTask.Result r) {
        assertEquals(13, r.logits().size());
        assertTrue(Golden.maxAbsDiff(g.prefillLogits(), r.logits().get(0)) < Golden.LOGIT_TOL, "prefill logits");
        for (int k = 0; k < 12; k++) {
            assertEquals(g.greedyTokens()[k], r.argmax()[k], "greedy token " + k);
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[k], r.logits().get(k + 1)) < Golden.LOGIT_TOL, "step " + k);
        }
    }

    @Test
    void cancellingARunningSequenceFreesItsSlot() throws Exception {
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(1, 4, 256)).start()) {
            CollectingSink endless = new CollectingSink();
            GenerationTask a = task(prompt(7, 5), sampled(1, 1_000_000), endless);
            s.submit(a);
            assertTrue(endless.firstToken.await(30, TimeUnit.SECONDS));
            CollectingSink next = new CollectingSink();
            s.submit(task(prompt(8, 4), sampled(2, 5), next));
            assertEquals(1, s.waiting(), "the only slot is taken");
            a.cancel();
            s.wake();
            GenerationResult r = endless.done.get(30, TimeUnit.SECONDS);
            assertTrue(endless.wasCancelled);
            assertEquals(FinishReason.CANCELLED, r.finishReason());
            assertEquals(5, next.done.get(30, TimeUnit.SECONDS).tokenIds().length);
        }
    }

    /** A sequence whose parallel token choice throws fails alone; the others of its steps finish. */
    @Test
    void aFailingChoiceFailsOnlyItsSequence() throws Exception {
        CompletableFuture<Throwable> failed = new CompletableFuture<>();
        int[] brokenPrompt = prompt(5, 4);
        SequenceTask broken = new SequenceTask() {
            @Override
            public int[] prompt() {
                return brokenPrompt;
            }

            @Override
            public long maxPositions() {
                return brokenPrompt.length + 16;
            }

            @Override
            public boolean choosesInParallel() {
                return true;
            }

            @Override
            public int choose(float[] logits) {
                throw new IllegalStateException("no token for you");
            }

            @Override
            public int accept(int token) {
                return token;
            }

            @Override
            public boolean cancelled() {
                return false;
            }

            @Override
            public void onCancelled() {
                failed.completeExceptionally(new AssertionError("not cancelled"));
            }

            @Override
            public void onFailure(Throwable error) {
                failed.complete(error);
            }
        };
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(3, 4, 256))) {
            CollectingSink a = new CollectingSink();
            CollectingSink b = new CollectingSink();
            s.submit(task(prompt(1, 3), sampled(1, 4), a));
            s.submit(broken);
            s.submit(task(prompt(2, 6), sampled(2, 5), b));
            s.start();
            assertEquals("no token for you", failed.get(30, TimeUnit.SECONDS).getMessage());
            assertEquals(4, a.done.get(30, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(5, b.done.get(30, TimeUnit.SECONDS).tokenIds().length);
        }
    }

    @Test
    void fullQueueRefusesNewWork() throws Exception {
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(1, 1, 256)).start()) {
            CollectingSink running = new CollectingSink();
            GenerationTask a = task(prompt(1, 3), sampled(1, 1_000_000), running);
            s.submit(a);
            assertTrue(running.firstToken.await(30, TimeUnit.SECONDS));
            CollectingSink waiting = new CollectingSink();
            GenerationTask b = task(prompt(2, 3), sampled(2, 3), waiting);
            s.submit(b);
            QueueFullException e = assertThrows(QueueFullException.class,
                    () -> s.submit(task(prompt(3, 3), sampled(3, 3), new CollectingSink())));
            assertTrue(e.getMessage().contains("max-queue 1"), e.getMessage());
            a.cancel();
            s.wake();
            assertEquals(3, waiting.done.get(30, TimeUnit.SECONDS).tokenIds().length);
        }
    }

    /**
     * A prompt joins when it fits beside what the running sequences hold now: with room for 23
     * positions, the second waits for the first although a batch slot is free (a new cache takes 16).
     * One whose prompt + max tokens could not fit even alone is refused, naming the flag.
     */
    @Test
    void aPromptWaitsUntilItsCacheFitsAndOneThatNeverCouldIsRefused() throws Exception {
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        SchedulerOptions options = new SchedulerOptions(4, 4, 256).withKvCacheBytes(23 * perPosition + 100);
        try (Scheduler s = new Scheduler(model, options)) {
            CollectingSink a = new CollectingSink();
            CollectingSink b = new CollectingSink();
            s.submit(task(prompt(1, 3), sampled(1, 20), a)); // 3 + 20 positions at most
            s.submit(task(prompt(2, 3), sampled(2, 20), b));
            s.start();
            assertEquals(20, a.done.get(30, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(20, b.done.get(30, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(1, s.peakBatch(), "sequences that ran together");
            assertEquals(0, s.preemptions());
            KvBudgetException e = assertThrows(KvBudgetException.class,
                    () -> s.submit(task(prompt(3, 3), sampled(3, 21), new CollectingSink())));
            assertTrue(e.getMessage().contains("--kv-cache-mb"), e.getMessage());
        }
    }

    /**
     * Two sequences start together in KV cache for 40 positions, and each may reach 33. When both need
     * to double their caches (16 -> 32), the later one is preempted; once the first has finished it
     * prefills its prompt and what it had generated again and goes on. Its seeded samples are the
     * tokens it draws alone, with no budget pressure.
     */
    @Test
    void aFullKvCachePreemptsTheLatestWhichResumesWhereItStopped() throws Exception {
        List<int[]> prompts = List.of(prompt(60, 3), prompt(61, 3));
        List<GenerationResult> alone = new ArrayList<>();
        try (Scheduler one = new Scheduler(model, new SchedulerOptions(1, 8, 256)).start()) {
            for (int i = 0; i < 2; i++) {
                CollectingSink sink = new CollectingSink();
                one.submit(task(prompts.get(i), sampled(70 + i, 30), sink));
                alone.add(sink.done.get(60, TimeUnit.SECONDS));
            }
        }
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 256).withKvCacheBytes(40 * perPosition))) {
            List<CollectingSink> sinks = List.of(new CollectingSink(), new CollectingSink());
            for (int i = 0; i < 2; i++) {
                s.submit(task(prompts.get(i), sampled(70 + i, 30), sinks.get(i)));
            }
            s.start();
            for (int i = 0; i < 2; i++) {
                GenerationResult r = sinks.get(i).done.get(60, TimeUnit.SECONDS);
                assertArrayEquals(alone.get(i).tokenIds(), r.tokenIds(), "sequence " + i);
                assertEquals(alone.get(i).content(), r.content(), "sequence " + i);
                assertEquals(FinishReason.LENGTH, r.finishReason());
            }
            assertEquals(2, s.peakBatch());
            assertEquals(1, s.preemptions());
            assertEquals(0, s.waiting());
        }
    }

    /** A sink that also says, when the first token comes, whose it was. */
    private static CollectingSink named(String name, List<String> firsts) {
        return new CollectingSink() {
            private boolean seen;

            @Override
            public void delta(dev.epic.text.generate.Delta d) {
                if (!seen) {
                    seen = true;
                    firsts.add(name);
                }
                super.delta(d);
            }
        };
    }

    private static GenerationTask task(int[] prompt, SamplingParams p, CollectingSink sink, int priority) {
        return new GenerationTask(prompt, new Generation(VOCAB, prompt, p), sink, null, priority);
    }

    /**
     * --scheduling-policy priority: one slot, four requests waiting for it; they take it lowest priority
     * value first, equal ones in arrival order. First come, first served refuses a priority.
     */
    @Test
    void byPriorityTheWaitingJoinHighestPriorityFirst() throws Exception {
        List<String> firsts = java.util.Collections.synchronizedList(new ArrayList<>());
        List<CollectingSink> sinks = new ArrayList<>();
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(1, 8, 256).withPriorities(true))) {
            String[] names = {"low", "first", "second", "urgent"};
            int[] priorities = {2, 0, 0, -1};
            for (int i = 0; i < names.length; i++) {
                CollectingSink sink = named(names[i], firsts);
                sinks.add(sink);
                s.submit(task(prompt(i, 5), sampled(i, 3), sink, priorities[i]));
            }
            s.start();
            for (CollectingSink sink : sinks) {
                sink.done.get(60, TimeUnit.SECONDS);
            }
        }
        assertEquals(List.of("urgent", "first", "second", "low"), firsts);
        try (Scheduler fcfs = new Scheduler(model, new SchedulerOptions(1, 8, 256)).start()) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> fcfs.submit(task(prompt(1, 5), sampled(1, 3), new CollectingSink(), 1)));
            assertTrue(e.getMessage().contains("needs --scheduling-policy priority"), e.getMessage());
            assertEquals(0, fcfs.waiting());
        }
    }

    /**
     * In KV cache for 40 positions, A runs and then B joins; when both must double their caches one is
     * preempted. First come, first served, that is B, the later, and A finishes first; by priority, with
     * A's priority lower (a higher value) than B's, it is A, though it came first, and B finishes first.
     * By priority, C (B's priority, waiting for room until B ends) then goes before A: a preempted
     * sequence waits for the waiting requests of a higher priority, as vLLM puts it back in its queue.
     */
    @Test
    void byPriorityTheLowestPriorityIsPreemptedThoughItCameFirst() throws Exception {
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        for (boolean priorities : new boolean[] {false, true}) {
            List<String> finished = java.util.Collections.synchronizedList(new ArrayList<>());
            SchedulerOptions o = new SchedulerOptions(4, 4, 256).withKvCacheBytes(40 * perPosition)
                    .withPriorities(priorities);
            try (Scheduler s = new Scheduler(model, o)) {
                CollectingSink b = new CollectingSink();
                CollectingSink c = new CollectingSink();
                boolean withC = priorities;
                CollectingSink a = new CollectingSink() {
                    private boolean others;

                    @Override
                    public void delta(dev.epic.text.generate.Delta d) {
                        super.delta(d);
                        if (!others) {
                            others = true;
                            // On the engine thread, at A's first token: B (and C) join at the next admission,
                            // while A's cache still holds its first 16 positions, however slow the machine.
                            s.submit(task(prompt(61, 3), sampled(71, 30), b, 0));
                            if (withC) { // a 25-token prompt: no room for its 26 positions while B holds 16 or more
                                s.submit(task(prompt(62, 25), sampled(72, 10), c, 0));
                            }
                        }
                    }
                };
                a.onFinished(() -> finished.add("A"));
                b.onFinished(() -> finished.add("B"));
                c.onFinished(() -> finished.add("C"));
                s.submit(task(prompt(60, 3), sampled(70, 30), a, priorities ? 1 : 0));
                s.start();
                if (withC) {
                    assertEquals(10, c.done.get(60, TimeUnit.SECONDS).tokenIds().length);
                }
                assertEquals(30, a.done.get(60, TimeUnit.SECONDS).tokenIds().length);
                assertEquals(30, b.done.get(60, TimeUnit.SECONDS).tokenIds().length);
                assertEquals(1, s.preemptions());
            }
            assertEquals(priorities ? List.of("B", "C", "A") : List.of("A", "B"), finished, "priorities " + priorities);
        }
    }

    /**
     * Room for 500 positions, two sequences of up to 300 each: B's cache holds 300 when A's, at 128,
     * must grow. Doubling A (to 256) would pass the budget; growing it by 64 positions does not, so
     * nothing is preempted and both run to the end.
     */
    @Test
    void aCacheThatCannotDoubleGrowsByLessBeforeAnythingIsPreempted() throws Exception {
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 256).withKvCacheBytes(500 * perPosition))) {
            CollectingSink a = new CollectingSink();
            CollectingSink b = new CollectingSink();
            s.submit(task(prompt(90, 3), sampled(90, 297), a));
            s.submit(task(prompt(91, 150), sampled(91, 150), b));
            s.start();
            assertEquals(297, a.done.get(60, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(150, b.done.get(60, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(2, s.peakBatch());
            assertEquals(0, s.preemptions());
        }
    }

    /**
     * A preempted sequence rejoins only with room to decode on: B, started beside a long A in KV cache
     * for 168 positions, is preempted once when its cache must double, and then waits for A instead of
     * rejoining to be preempted again after every token.
     */
    @Test
    void aPreemptedSequenceIsNotPreemptedAgainAfterEachToken() throws Exception {
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 256).withKvCacheBytes(168 * perPosition))) {
            CollectingSink b = new CollectingSink();
            java.util.concurrent.atomic.AtomicInteger aTokens = new java.util.concurrent.atomic.AtomicInteger();
            CollectingSink a = new CollectingSink() {
                @Override
                public void delta(dev.epic.text.generate.Delta d) {
                    super.delta(d);
                    if (aTokens.incrementAndGet() == 70) { // on the engine thread: B joins at the next admission
                        s.submit(task(prompt(2, 3), sampled(2, 60), b));
                    }
                }
            };
            s.submit(task(prompt(1, 3), sampled(1, 125), a));
            s.start();
            assertEquals(125, a.done.get(60, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(60, b.done.get(60, TimeUnit.SECONDS).tokenIds().length);
            assertEquals(2, s.peakBatch());
            assertEquals(1, s.preemptions());
        }
    }

    /**
     * After a preemption, the logits of every later position come from prefilling the sequence again
     * instead of decoding it: the same bits, and so the same greedy tokens, as the same prompts run
     * alone (attention's order does not follow the chunking; see LoadInvarianceTest).
     */
    @Test
    void aPreemptedSequenceComputesTheLogitsItWouldHave() throws Exception {
        List<int[]> prompts = List.of(prompt(80, 5), prompt(81, 2), prompt(82, 4));
        List<LogitsTask.Result> alone = new ArrayList<>();
        try (Scheduler one = new Scheduler(model, new SchedulerOptions(1, 8, 256)).start()) {
            for (int[] p : prompts) {
                LogitsTask t = new LogitsTask(p, 26);
                one.submit(t);
                alone.add(t.result().get(60, TimeUnit.SECONDS));
            }
        }
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 256).withKvCacheBytes(50 * perPosition))) {
            List<LogitsTask> tasks = new ArrayList<>();
            for (int[] p : prompts) {
                tasks.add(new LogitsTask(p, 26));
                s.submit(tasks.getLast());
            }
            s.start();
            for (int i = 0; i < prompts.size(); i++) {
                LogitsTask.Result r = tasks.get(i).result().get(60, TimeUnit.SECONDS);
                assertArrayEquals(alone.get(i).argmax(), r.argmax(), "prompt " + i);
                for (int k = 0; k < r.logits().size(); k++) {
                    assertArrayEquals(alone.get(i).logits().get(k), r.logits().get(k), "prompt " + i + " step " + k);
                }
            }
            assertEquals(3, s.peakBatch());
            assertTrue(s.preemptions() >= 1, "preemptions: " + s.preemptions());
        }
    }

    @Test
    void severalSequencesAreQueuedAllOrNone() throws Exception {
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(1, 1, 256))) { // not started: nothing runs
            List<GenerationTask> three = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                three.add(task(prompt(20 + i, 3), sampled(i, 2), new CollectingSink()));
            }
            QueueFullException e = assertThrows(QueueFullException.class, () -> s.submitAll(three));
            assertTrue(e.getMessage().contains("3 asked for"), e.getMessage());
            assertEquals(0, s.waiting());
            s.submitAll(three.subList(0, 2)); // one runs, one waits
            assertEquals(2, s.waiting());
            assertThrows(QueueFullException.class, () -> s.submit(three.get(2)));
        }
    }

    @Test
    void closingCancelsRunningAndWaitingSequences() throws Exception {
        CollectingSink running = new CollectingSink();
        CollectingSink waiting = new CollectingSink();
        Scheduler s = new Scheduler(model, new SchedulerOptions(1, 4, 256)).start();
        s.submit(task(prompt(4, 3), sampled(4, 1_000_000), running));
        assertTrue(running.firstToken.await(30, TimeUnit.SECONDS));
        s.submit(task(prompt(5, 3), sampled(5, 3), waiting));
        s.close();
        assertEquals(FinishReason.CANCELLED, running.done.get(30, TimeUnit.SECONDS).finishReason());
        assertEquals(FinishReason.CANCELLED, waiting.done.get(30, TimeUnit.SECONDS).finishReason());
        SchedulerUnavailableException e = assertThrows(SchedulerUnavailableException.class,
                () -> s.submit(task(prompt(6, 3), sampled(6, 3), new CollectingSink())));
        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
    }

    private static FailingExperts failingExperts() {
        return new FailingExperts(LocalExperts.all(checkpoint.config(), checkpoint));
    }

    /** A started scheduler of one batch slot over the engine with {@code experts}. */
    private static Scheduler oneSlot(FailingExperts experts) {
        Transformer engine = new Transformer(checkpoint.config(), checkpoint, experts);
        return new Scheduler(engine, new SchedulerOptions(1, 4, 256)).start();
    }

    /** Submits a sequence that never ends by itself and waits until it runs. */
    private static CollectingSink running(Scheduler s, int seed) throws InterruptedException {
        CollectingSink sink = new CollectingSink();
        s.submit(task(prompt(seed, 3), sampled(seed, 1_000_000), sink));
        assertTrue(sink.firstToken.await(30, TimeUnit.SECONDS));
        return sink;
    }

    private static Throwable failure(CollectingSink sink) {
        return assertThrows(ExecutionException.class, () -> sink.done.get(30, TimeUnit.SECONDS)).getCause();
    }

    /** Out of memory in a step fails that step's sequences; the engine lives on and serves the next. */
    @Test
    void outOfMemoryInAStepFailsItsSequencesOnly() throws Exception {
        FailingExperts experts = failingExperts();
        try (Scheduler s = oneSlot(experts)) {
            CollectingSink running = running(s, 30);
            experts.failNext(new OutOfMemoryError("injected: no room for the step"));
            assertInstanceOf(OutOfMemoryError.class, failure(running));
            CollectingSink next = new CollectingSink();
            s.submit(task(prompt(31, 3), sampled(2, 4), next));
            assertEquals(4, next.done.get(30, TimeUnit.SECONDS).tokenIds().length);
            assertFalse(s.failed());
        }
    }

    /**
     * A sequence that runs out of memory as it joins the batch, where its KV cache is reserved, fails
     * alone. (Injected through its prompt-cache callback, which runs in the same place.)
     */
    @Test
    void outOfMemoryJoiningTheBatchFailsOnlyThatSequence() throws Exception {
        try (Scheduler s = new Scheduler(model, new SchedulerOptions(2, 4, 256))) {
            CollectingSink doomed = new CollectingSink() {
                @Override
                public void promptCached(int tokens) {
                    throw new OutOfMemoryError("injected: the KV cache does not fit");
                }
            };
            CollectingSink other = new CollectingSink();
            s.submit(task(prompt(40, 5), sampled(1, 3), doomed));
            s.submit(task(prompt(41, 5), sampled(2, 3), other));
            s.start(); // both join in the same admission
            assertInstanceOf(OutOfMemoryError.class, failure(doomed));
            assertEquals(3, other.done.get(30, TimeUnit.SECONDS).tokenIds().length);
            assertFalse(s.failed());
        }
    }

    /**
     * An Error that kills the engine thread: the running and the waiting sequences fail with
     * UNAVAILABLE instead of waiting forever, and new ones are refused.
     */
    @Test
    void anEngineThatDiesFailsEverySequenceAndRefusesNewOnes() throws Exception {
        FailingExperts experts = failingExperts();
        try (Scheduler s = oneSlot(experts)) {
            CollectingSink running = running(s, 50);
            CollectingSink waiting = new CollectingSink();
            s.submit(task(prompt(51, 3), sampled(2, 3), waiting)); // the only slot is taken: it waits
            experts.failNext(new InternalError("injected: the engine thread dies"));
            for (CollectingSink sink : List.of(running, waiting)) {
                Throwable e = failure(sink);
                assertEquals(Status.Code.UNAVAILABLE, Status.fromThrowable(e).getCode(), e.toString());
            }
            assertTrue(s.failed());
            SchedulerUnavailableException refused = assertThrows(SchedulerUnavailableException.class,
                    () -> s.submit(task(prompt(52, 3), sampled(3, 3), new CollectingSink())));
            assertTrue(refused.getStatus().getDescription().contains("injected: the engine thread dies"),
                    refused.getStatus().getDescription());
            assertEquals(0, s.waiting());
        }
    }
}
