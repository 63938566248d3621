package dev.epic.coordinator.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import java.util.Arrays;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

class PrefixCacheTest {
    static final int LAYERS = 2;
    static final int RANK = 3;
    static final int ROPE = 2;
    private static final int B = PrefixCache.BLOCK;

    /** A cache holding prompt.length positions whose values are a function of (layer, position, token). */
    static KvCache computed(int[] prompt) {
        HeapKvCache c = new HeapKvCache(LAYERS, RANK, ROPE, 10_000);
        for (int layer = 0; layer < LAYERS; layer++) {
            for (int p = 0; p < prompt.length; p++) {
                float v = layer * 1e6f + p * 1e3f + prompt[p];
                c.write(layer, p, new float[] {v, v + 0.25f, v + 0.5f}, 0, new float[] {-v, -v - 0.5f}, 0);
            }
        }
        c.setLength(prompt.length);
        return c;
    }

    static int[] tokens(int seed, int n) {
        int[] t = new int[n];
        for (int i = 0; i < n; i++) {
            t[i] = (seed * 7919 + i * 31) % 1000;
        }
        return t;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    /** Restores prompt into a fresh cache and checks every restored position against a full computation. */
    static int restoreAndCheck(PrefixCache cache, int[] prompt) {
        HeapKvCache fresh = new HeapKvCache(LAYERS, RANK, ROPE, 10_000);
        int n = cache.restore(prompt, fresh);
        assertEquals(n, fresh.length());
        KvCache expected = computed(prompt);
        for (int layer = 0; layer < LAYERS; layer++) {
            float[] lat = new float[n * RANK];
            float[] pe = new float[n * ROPE];
            fresh.read(layer, n, lat, pe);
            float[] wantLat = new float[prompt.length * RANK];
            float[] wantPe = new float[prompt.length * ROPE];
            expected.read(layer, prompt.length, wantLat, wantPe);
            assertArrayEquals(Arrays.copyOf(wantLat, n * RANK), lat, "layer " + layer);
            assertArrayEquals(Arrays.copyOf(wantPe, n * ROPE), pe, "layer " + layer);
        }
        return n;
    }

    @Test
    void restoresTheLongestStoredPrefixInWholeBlocks() {
        PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE);
        int[] system = tokens(1, 2 * B + 5);
        int[] first = concat(system, tokens(2, 20));
        assertEquals(0, restoreAndCheck(cache, first));
        cache.store(first, computed(first));
        assertEquals(3 * cache.blockBytes(), cache.storedBytes()); // 57 tokens: three whole blocks

        // Shares the system prompt's two whole blocks, then differs inside the third.
        int[] second = concat(system, tokens(3, 40));
        assertEquals(2 * B, restoreAndCheck(cache, second));
        // The same prompt again: all three blocks.
        assertEquals(3 * B, restoreAndCheck(cache, first));
        assertEquals(first.length + second.length + first.length, cache.queriedTokens());
        assertEquals(2 * B + 3 * B, cache.hitTokens());
    }

    @Test
    void leavesThePromptsLastTokenToCompute() {
        PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE);
        int[] prompt = tokens(4, 2 * B);
        cache.store(prompt, computed(prompt));
        assertEquals(B, restoreAndCheck(cache, prompt)); // its logits are needed, so block 2 is recomputed
        assertEquals(2 * B, restoreAndCheck(cache, concat(prompt, new int[] {5})));
    }

    @Test
    void evictsTheLeastRecentlyUsedBlocksWhenFull() {
        PrefixCache probe = new PrefixCache(0, LAYERS, RANK, ROPE);
        PrefixCache cache = new PrefixCache(3 * probe.blockBytes(), LAYERS, RANK, ROPE);
        int[] a = tokens(5, 2 * B + 1);
        int[] b = tokens(6, 2 * B + 1);
        cache.store(a, computed(a));
        cache.store(b, computed(b)); // needs room for a second block: a's leaf goes
        assertEquals(3 * cache.blockBytes(), cache.storedBytes());
        assertEquals(2 * B, restoreAndCheck(cache, b));
        assertEquals(B, restoreAndCheck(cache, a));
        // a was used last, so storing c evicts b's leaf, then (b's first block being a leaf now) b's first block.
        int[] c = tokens(7, 2 * B + 1);
        cache.store(c, computed(c));
        assertEquals(0, restoreAndCheck(cache, b));
        assertEquals(B, restoreAndCheck(cache, a));
        assertEquals(2 * B, restoreAndCheck(cache, c));
    }

    @Test
    void aZeroBudgetKeepsNothing() {
        PrefixCache cache = new PrefixCache(0, LAYERS, RANK, ROPE);
        int[] a = tokens(8, 3 * B);
        cache.store(a, computed(a));
        assertEquals(0, cache.storedBytes());
        assertEquals(0, restoreAndCheck(cache, a));
    }

    /**
     * On the real engine: a prompt that starts like an earlier one reuses its blocks and still gives
     * the reference implementation's logits (testdata/tiny-v3, golden prompt of 300 tokens).
     */
    @Test
    void aPromptStartingFromCachedBlocksGivesTheGoldenLogits() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        int[] head = Arrays.copyOf(g.tokens(), 150);
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
                Scheduler s = new Scheduler(Transformer.load(checkpoint), new SchedulerOptions(4, 4, 64, 64L << 20))
                        .start()) {
            dev.epic.model.PrefixStore prefixes = s.prefixCache();
            LogitsTask warm = new LogitsTask(head, 0);
            s.submit(warm);
            warm.result().get(60, TimeUnit.SECONDS);
            assertEquals(0, prefixes.hitTokens());

            LogitsTask full = new LogitsTask(g.tokens(), 12);
            s.submit(full);
            SchedulerTest.check(g, full.result().get(60, TimeUnit.SECONDS));
            assertEquals(150 / B * B, prefixes.hitTokens(), "the 150-token head's whole blocks");

            LogitsTask again = new LogitsTask(g.tokens(), 12);
            s.submit(again);
            SchedulerTest.check(g, again.result().get(60, TimeUnit.SECONDS));
            assertEquals(150 / B * B + (300 - 1) / B * B, prefixes.hitTokens());
        }
    }

    /**
     * In process the kept blocks are the caches' pages, shared by every sequence started from them, and the
     * KV budget counts only what each holds beside them: two sequences with the same 300-token prompt,
     * started from its kept blocks, run side by side in a budget of 420 positions that holds one whole
     * prompt alone (without prefix caching the second waits for the first), with the golden logits.
     */
    @Test
    void sequencesStartedFromKeptBlocksShareTheirPagesInTheKvBudget() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4); // 300 tokens, 12 greedy steps
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            for (long prefixBytes : new long[] {64L << 20, 0}) {
                Transformer model = Transformer.load(checkpoint);
                long budget = 420 * model.kvBytesPerPosition();
                try (Scheduler s = new Scheduler(model, new SchedulerOptions(4, 4, 512, prefixBytes, budget)).start()) {
                    LogitsTask warm = new LogitsTask(g.tokens(), 0);
                    s.submit(warm);
                    warm.result().get(60, TimeUnit.SECONDS);
                    LogitsTask a = new LogitsTask(g.tokens(), 12);
                    LogitsTask b = new LogitsTask(g.tokens(), 12);
                    s.submitAll(java.util.List.of(a, b));
                    SchedulerTest.check(g, a.result().get(60, TimeUnit.SECONDS));
                    SchedulerTest.check(g, b.result().get(60, TimeUnit.SECONDS));
                    assertEquals(0, s.preemptions());
                    if (prefixBytes > 0) {
                        assertEquals(2 * 288, s.prefixCache().hitTokens(), "both started from the 18 kept blocks");
                        assertEquals(2, s.peakBatch(), "sequences that ran together");
                    } else {
                        assertEquals(1, s.peakBatch(), "without shared pages the second cannot join beside the first");
                    }
                }
            }
        }
    }

    /**
     * With bf16 caches ({@code --kv-cache-dtype bf16}) the kept blocks hold the rounded values as stored, so
     * a prompt starting from them computes exactly what it computes whole: the same bits, although the
     * chunks after the hit start elsewhere (see ChunkInvarianceTest).
     */
    @Test
    void aBf16PromptFromCachedBlocksGivesTheBitsOfOneComputedWhole() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        int[] head = Arrays.copyOf(g.tokens(), 150);
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            LogitsTask.Result whole;
            try (Scheduler s = new Scheduler(Transformer.load(checkpoint).kvCacheDtype(KvCacheDtype.BF16),
                    new SchedulerOptions(4, 4, 64, 0)).start()) {
                LogitsTask t = new LogitsTask(g.tokens(), 12);
                s.submit(t);
                whole = t.result().get(60, TimeUnit.SECONDS);
            }
            try (Scheduler s = new Scheduler(Transformer.load(checkpoint).kvCacheDtype(KvCacheDtype.BF16),
                    new SchedulerOptions(4, 4, 64, 64L << 20)).start()) {
                LogitsTask warm = new LogitsTask(head, 0);
                s.submit(warm);
                warm.result().get(60, TimeUnit.SECONDS);
                LogitsTask full = new LogitsTask(g.tokens(), 12);
                s.submit(full);
                LogitsTask.Result hit = full.result().get(60, TimeUnit.SECONDS);
                assertEquals(150 / B * B, s.prefixCache().hitTokens());
                assertArrayEquals(whole.argmax(), hit.argmax());
                for (int k = 0; k < whole.logits().size(); k++) {
                    assertArrayEquals(whole.logits().get(k), hit.logits().get(k), "logits " + k);
                }
            }
        }
    }

    /**
     * The next turn of a chat repeats the prompt and the answer: a finished sequence leaves both
     * cached, and a prompt continuing them gives the golden logits of the positions that follow.
     */
    @Test
    void aPromptContinuingAnAnswerStartsFromIt() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4); // 300 tokens, 12 greedy steps
        int[] next = Arrays.copyOf(g.tokens(), 300 + 11);
        System.arraycopy(g.greedyTokens(), 0, next, 300, 11);
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
                Scheduler s = new Scheduler(Transformer.load(checkpoint), new SchedulerOptions(4, 4, 64, 64L << 20))
                        .start()) {
            LogitsTask first = new LogitsTask(g.tokens(), 12);
            s.submit(first);
            SchedulerTest.check(g, first.result().get(60, TimeUnit.SECONDS));
            LogitsTask turn = new LogitsTask(next, 1);
            s.submit(turn);
            LogitsTask.Result r = turn.result().get(60, TimeUnit.SECONDS);
            // 312 positions were cached (the prompt and 12 fed answer tokens): 19 whole blocks. The prompt
            // alone fills 18; the 19th (positions 288-303) is there only because the answer was kept.
            assertEquals(19 * B, s.prefixCache().hitTokens());
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[10], r.logits().get(0)) < Golden.LOGIT_TOL);
            assertEquals(g.greedyTokens()[11], r.argmax()[0]);
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[11], r.logits().get(1)) < Golden.LOGIT_TOL);
        }
    }
}
