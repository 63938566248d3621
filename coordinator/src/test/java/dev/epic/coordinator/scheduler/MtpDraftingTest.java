package dev.epic.coordinator.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.VectorOps;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.SequenceChunk;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Mtp;
import dev.epic.model.quant.WeightFormat;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Speculative decoding with drafts from the checkpoint's MTP layer (testdata/tiny-v3, which has one),
 * through the scheduler. Its random weights rarely predict the model's own choices, so the drafts are
 * checked by tasks that choose a script instead: the script takes the MTP layer's prediction at the
 * steps marked A (computed apart, over the whole sequence at once) and another token at those marked R.
 * The scheduler keeps exactly the A steps' drafts only if each of its drafts is the MTP layer's argmax
 * at the right position with the right hidden state and following token, however the prompt was
 * chunked, batched, or restored from the prefix cache.
 */
class MtpDraftingTest {
    private static final Tokenizer VOCAB = Tokenizer.deepSeekV3();
    private static final String PATTERN = "AARARRAAAR";
    private static Checkpoint checkpoint;
    private static Transformer model;

    @BeforeAll
    static void load() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
        model = Transformer.load(checkpoint).enableMtp();
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    private static int[] prompt(int length, int seed) {
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = (seed * 131 + i * 977) % model.config().vocabSize();
        }
        return p;
    }

    /** The MTP layer's prediction of the token after s's last: its argmax at position s.length - 2, from scratch. */
    private static int mtpPrediction(int[] s) {
        KvCache cache = model.newCache();
        int n = s.length - 1;
        float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(cache, Arrays.copyOf(s, n), 0))).hidden();
        float[] logits = model.mtp().step(List.of(new Mtp.Chunk(cache, 0, Arrays.copyOfRange(s, 1, n + 1), hidden, 0,
                true))).getFirst().logits();
        return VectorOps.argmax(logits);
    }

    /**
     * The tokens a task chooses: the first freely, then per pattern letter the MTP's draft and a free
     * token (A: a step that keeps its draft), another token (R: a step that does not), or the MTP's
     * draft alone (M: every token the MTP layer's prediction, so every draft is kept however the steps fall).
     */
    private static int[] script(int[] prompt, String pattern) {
        int vocab = model.config().vocabSize();
        List<Integer> chosen = new ArrayList<>();
        int[] s = Arrays.copyOf(prompt, prompt.length + 1);
        s[prompt.length] = 3; // the first token, chosen from the prompt's logits
        chosen.add(3);
        for (char step : pattern.toCharArray()) {
            int draft = mtpPrediction(s);
            int[] next = switch (step) {
                case 'A' -> new int[] {draft, (draft * 7 + 11) % vocab};
                case 'R' -> new int[] {(draft + 1) % vocab};
                default -> new int[] {draft};
            };
            for (int t : next) {
                s = Arrays.copyOf(s, s.length + 1);
                s[s.length - 1] = t;
                chosen.add(t);
            }
        }
        return chosen.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * The MTP layer's {@code depth} chained drafts to follow s's last token (the pending one), from
     * scratch: its first pass over every position before, then each further one on its own output.
     */
    private static int[] mtpChain(int[] s, int depth) {
        KvCache cache = model.newCache();
        int n = s.length - 1;
        float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(cache, Arrays.copyOf(s, n), 0))).hidden();
        Mtp.Draft d = model.mtp().step(List.of(new Mtp.Chunk(cache, 0, Arrays.copyOfRange(s, 1, n + 1), hidden, 0,
                true))).getFirst();
        int[] drafts = new int[depth];
        drafts[0] = VectorOps.argmax(d.logits());
        for (int k = 1; k < depth; k++) {
            d = model.mtp().step(List.of(new Mtp.Chunk(cache, n + k - 1, new int[] {drafts[k - 1]}, d.hidden(), 0, true)))
                    .getFirst();
            drafts[k] = VectorOps.argmax(d.logits());
        }
        return drafts;
    }

    /**
     * A script for two drafts a step: per letter the step keeps both drafts and a free token follows
     * (A), keeps the first and another token follows (B), or keeps none (R).
     */
    private static int[] chainedScript(int[] prompt, String pattern) {
        int vocab = model.config().vocabSize();
        List<Integer> chosen = new ArrayList<>(List.of(3));
        int[] s = Arrays.copyOf(prompt, prompt.length + 1);
        s[prompt.length] = 3;
        for (char step : pattern.toCharArray()) {
            int[] d = mtpChain(s, 2);
            int[] next = switch (step) {
                case 'A' -> new int[] {d[0], d[1], (d[1] * 7 + 11) % vocab};
                case 'B' -> new int[] {d[0], (d[1] + 1) % vocab};
                default -> new int[] {(d[0] + 1) % vocab};
            };
            for (int t : next) {
                s = Arrays.copyOf(s, s.length + 1);
                s[s.length - 1] = t;
                chosen.add(t);
            }
        }
        return chosen.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Chooses its script whatever the logits, and checks drafts as generation does. */
    private static final class Scripted implements SequenceTask {
        final int[] prompt;
        final int[] script;
        final CountDownLatch done = new CountDownLatch(1);
        volatile Throwable failure;
        private int n;

        Scripted(int[] prompt, int[] script) {
            this.prompt = prompt;
            this.script = script;
        }

        @Override
        public int[] prompt() {
            return prompt;
        }

        @Override
        public long maxPositions() {
            return prompt.length + script.length + 4;
        }

        @Override
        public boolean choosesInParallel() {
            return true;
        }

        @Override
        public boolean verifiesDrafts() {
            return true;
        }

        @Override
        public int choose(float[] logits) {
            return script[n];
        }

        @Override
        public int accept(int token) {
            if (++n == script.length) {
                done.countDown();
                return -1;
            }
            return token;
        }

        @Override
        public boolean cancelled() {
            return false;
        }

        @Override
        public void onCancelled() {
            failure = new IllegalStateException("cancelled");
            done.countDown();
        }

        @Override
        public void onFailure(Throwable error) {
            failure = error;
            done.countDown();
        }

        void await() throws InterruptedException {
            assertTrue(done.await(60, TimeUnit.SECONDS), "the script did not finish");
            assertNull(failure);
            assertEquals(script.length, n);
        }
    }

    private static long count(String pattern, char c) {
        return pattern.chars().filter(x -> x == c).count();
    }

    /** Runs {@code tasks} together and returns the closed scheduler (its last step counted); asserts each finished its script. */
    private static Scheduler run(SchedulerOptions options, List<Scripted> tasks) throws Exception {
        Scheduler s = new Scheduler(model, options);
        try (s) {
            tasks.forEach(s::submit);
            s.start();
            for (Scripted t : tasks) {
                t.await();
            }
        }
        return s;
    }

    private static long[] counts(Scheduler s) {
        return new long[] {s.draftTokens(), s.acceptedDrafts()};
    }

    @Test
    void everyDraftIsTheMtpLayersPredictionAloneAndBatchedWithChunkedPrompts() throws Exception {
        int[] a = prompt(21, 1);
        int[] b = prompt(9, 2);
        int[] scriptA = script(a, PATTERN);
        int[] scriptB = script(b, "RAAR");
        // One step per letter, each drafting one token, the A letters' drafts kept.
        long[] alone = counts(run(new SchedulerOptions(4, 8, 256).withSpeculation(PromptLookup.mtp(0)),
                List.of(new Scripted(a, scriptA))));
        assertArrayEquals(new long[] {PATTERN.length(), count(PATTERN, 'A')}, alone);
        // Prompts in chunks of 5 beside each other's decode steps.
        long[] batched = counts(run(new SchedulerOptions(4, 8, 5).withSpeculation(PromptLookup.mtp(0)),
                List.of(new Scripted(a, scriptA), new Scripted(b, scriptB))));
        assertArrayEquals(new long[] {PATTERN.length() + 4, count(PATTERN, 'A') + 2}, batched);
    }

    /**
     * Two drafts a step, the second by the MTP layer on its own output: each is the layer's prediction
     * computed apart, alone and batched with prompts prefilled in chunks; the first pass's rows written
     * past the pending token are written over by the next step's.
     */
    @Test
    void chainedDraftsAreTheMtpLayersOnItsOwnOutput() throws Exception {
        String pattern = "ABARBAAR";
        int[] a = prompt(23, 11);
        int[] b = prompt(8, 12);
        int[] scriptA = chainedScript(a, pattern);
        int[] scriptB = chainedScript(b, "BAR");
        long keptA = 2 * count(pattern, 'A') + count(pattern, 'B');
        long[] alone = counts(run(new SchedulerOptions(4, 8, 256).withSpeculation(PromptLookup.mtp(2, 0)),
                List.of(new Scripted(a, scriptA))));
        assertArrayEquals(new long[] {2L * pattern.length(), keptA}, alone);
        long[] batched = counts(run(new SchedulerOptions(4, 8, 5).withSpeculation(PromptLookup.mtp(2, 0)),
                List.of(new Scripted(a, scriptA), new Scripted(b, scriptB))));
        assertArrayEquals(new long[] {2L * (pattern.length() + 3), keptA + 3}, batched);
    }

    @Test
    void aPrefixHitRestoresTheMtpLayerToo() throws Exception {
        int[] prompt = prompt(70, 3); // whole blocks to keep
        int[] script = script(prompt, PATTERN);
        SchedulerOptions options = new SchedulerOptions(4, 8, 256, 64L << 20).withSpeculation(PromptLookup.mtp(0));
        Scheduler s = new Scheduler(model, options);
        try (s) {
            s.start();
            for (int round = 0; round < 2; round++) {
                Scripted t = new Scripted(prompt, script);
                s.submit(t);
                t.await();
            }
        }
        assertEquals(2L * PATTERN.length(), s.draftTokens());
        assertEquals(2 * count(PATTERN, 'A'), s.acceptedDrafts());
        assertTrue(s.prefixCache().hitTokens() >= 64, "the second round did not start from kept blocks: "
                + s.prefixCache().hitTokens() + " tokens");
    }

    /**
     * A sequence that ends leaves blocks whose MTP layer holds its last step's positions too: restored,
     * they are the bits of the MTP layer computed over the whole sequence at once.
     */
    @Test
    void theBlocksAnEndedSequenceLeavesHoldItsMtpLayer() throws Exception {
        int[] prompt = prompt(57, 6);
        int[] script = script(prompt, "AAAA"); // 9 tokens; the last step keeps its draft: positions 63 and 64
        SchedulerOptions options = new SchedulerOptions(4, 8, 256, 64L << 20).withSpeculation(PromptLookup.mtp(0));
        Scheduler s = run(options, List.of(new Scripted(prompt, script)));
        int[] fed = new int[prompt.length + script.length - 1]; // the last token chosen is not fed
        System.arraycopy(prompt, 0, fed, 0, prompt.length);
        System.arraycopy(script, 0, fed, prompt.length, script.length - 1);
        assertEquals(65, fed.length);
        assertKeptWithTheMtpLayer(s.prefixCache(), fed, 64);
    }

    /** So do those of a sequence that ends at its first token (max_tokens 1): its prompt's blocks. */
    @Test
    void aSequenceEndingAtItsFirstTokenKeepsItsPromptWithTheMtpLayer() throws Exception {
        int[] prompt = prompt(33, 7);
        SchedulerOptions options = new SchedulerOptions(4, 8, 256, 64L << 20).withSpeculation(PromptLookup.mtp(0));
        Scheduler s = run(options, List.of(new Scripted(prompt, new int[] {3})));
        assertKeptWithTheMtpLayer(s.prefixCache(), prompt, 32);
    }

    /**
     * A sequence preempted for the KV budget recomputes its MTP layer with the rest: with every token
     * the MTP layer's prediction, every draft is kept, before and after, and the blocks it leaves once
     * it ends hold the MTP layer computed over it from scratch.
     */
    @Test
    void aPreemptedSequenceRecomputesItsMtpLayer() throws Exception {
        List<int[]> prompts = List.of(prompt(30, 8), prompt(31, 9), prompt(32, 10));
        List<Scripted> tasks = new ArrayList<>();
        for (int[] p : prompts) {
            tasks.add(new Scripted(p, script(p, "M".repeat(24))));
        }
        SchedulerOptions options = new SchedulerOptions(4, 8, 256).withSpeculation(PromptLookup.mtp(0))
                .withKvCacheBytes(110 * model.kvBytesPerPosition());
        Scheduler s = run(options, tasks);
        assertTrue(s.preemptions() >= 1, "no sequence was preempted");
        assertTrue(s.draftTokens() > 0);
        assertEquals(s.draftTokens(), s.acceptedDrafts(), "a draft after a recompute was not the MTP layer's");
    }

    /** The kept blocks of {@code fed}'s first {@code positions} hold the MTP layer computed over them from scratch. */
    private static void assertKeptWithTheMtpLayer(dev.epic.model.PrefixStore kept, int[] fed, int positions) {
        KvCache restored = model.newCache();
        int[] prompt = Arrays.copyOf(fed, positions + 2); // the last token of a prompt is never restored
        assertEquals(positions, kept.restore(prompt, restored), "positions restored");
        KvCache scratch = model.newCache();
        float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(scratch, Arrays.copyOf(fed, positions), 0)))
                .hidden();
        model.mtp().step(List.of(new Mtp.Chunk(scratch, 0, Arrays.copyOfRange(fed, 1, positions + 1), hidden, 0,
                false)));
        int layer = model.mtp().layer();
        int rank = model.config().kvLoraRank();
        int rope = model.config().qkRopeHeadDim();
        assertArrayEquals(Arrays.copyOf(scratch.latents(layer, positions, rank, rope), positions * rank),
                Arrays.copyOf(restored.latents(layer, positions, rank, rope), positions * rank));
        assertArrayEquals(Arrays.copyOf(scratch.ropeKeys(layer, positions, rank, rope), positions * rope),
                Arrays.copyOf(restored.ropeKeys(layer, positions, rank, rope), positions * rope));
    }

    /** Greedy and seeded sampled generations give the same tokens with MTP drafts as without. */
    @Test
    void generationsAreTheSameWithMtpDraftsAsWithout() throws Exception {
        for (SamplingParams p : List.of(
                SamplingParams.builder().temperature(0).maxTokens(24).ignoreEos(true).build(),
                SamplingParams.builder().temperature(0.8).seed(5).maxTokens(24).ignoreEos(true).build())) {
            List<int[]> prompts = List.of(prompt(30, 4), prompt(12, 5));
            List<GenerationResult> plain = generate(model, new SchedulerOptions(4, 8, 7), prompts, p);
            List<GenerationResult> drafted = generate(model,
                    new SchedulerOptions(4, 8, 7).withSpeculation(PromptLookup.mtp(0)), prompts, p);
            for (int i = 0; i < prompts.size(); i++) {
                assertArrayEquals(plain.get(i).tokenIds(), drafted.get(i).tokenIds(), "prompt " + i);
            }
        }
    }

    /** So do q8 weights (the MTP layer's converted at load too) with bf16 caches (its layer bf16 too), two drafts a step. */
    @Test
    void quantisedWeightsAndBf16CachesDraftToo() throws Exception {
        Transformer q8 = Transformer.load(checkpoint, WeightFormat.Q8).kvCacheDtype(KvCacheDtype.BF16);
        SamplingParams p = SamplingParams.builder().temperature(0).maxTokens(24).ignoreEos(true).build();
        List<int[]> prompts = List.of(prompt(30, 4), prompt(12, 5));
        List<GenerationResult> plain = generate(q8, new SchedulerOptions(4, 8, 7), prompts, p);
        List<GenerationResult> drafted = generate(q8,
                new SchedulerOptions(4, 8, 7).withSpeculation(PromptLookup.mtp(2, 0)), prompts, p);
        for (int i = 0; i < prompts.size(); i++) {
            assertArrayEquals(plain.get(i).tokenIds(), drafted.get(i).tokenIds(), "prompt " + i);
        }
        assertEquals(KvCacheDtype.BF16, q8.newCache().dtype());
        assertEquals(q8.config().numHiddenLayers() + 1, q8.cacheLayers());
    }

    private static List<GenerationResult> generate(Transformer model, SchedulerOptions options, List<int[]> prompts,
            SamplingParams p) throws Exception {
        List<CollectingSink> sinks = new ArrayList<>();
        try (Scheduler s = new Scheduler(model, options)) {
            for (int[] prompt : prompts) {
                CollectingSink sink = new CollectingSink();
                sinks.add(sink);
                s.submit(new GenerationTask(prompt, new Generation(VOCAB, prompt, p), sink));
            }
            s.start();
            List<GenerationResult> out = new ArrayList<>();
            for (CollectingSink sink : sinks) {
                out.add(sink.done.get(60, TimeUnit.SECONDS));
            }
            if (options.speculation().mtp()) { // a draft every step after the first token
                assertTrue(s.draftTokens() > 0 && s.draftTokens() <= prompts.size() * 23L * options.speculation().tokens(),
                        s.draftTokens() + " drafts");
            }
            return out;
        }
    }
}
