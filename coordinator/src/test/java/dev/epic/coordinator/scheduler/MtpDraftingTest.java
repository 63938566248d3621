package dev.epic.coordinator.scheduler;

import static dev.epic.coordinator.scheduler.MtpScripts.chainedScript;
import static dev.epic.coordinator.scheduler.MtpScripts.count;
import static dev.epic.coordinator.scheduler.MtpScripts.counts;
import static dev.epic.coordinator.scheduler.MtpScripts.generate;
import static dev.epic.coordinator.scheduler.MtpScripts.prompt;
import static dev.epic.coordinator.scheduler.MtpScripts.script;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.SequenceChunk;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Mtp;
import dev.epic.model.quant.WeightFormat;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
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
    private static final String PATTERN = "AARARRAAAR";
    private static final Checkpoint checkpoint = MtpScripts.CHECKPOINT;
    private static final Transformer model = MtpScripts.MODEL;

    private static Scheduler run(SchedulerOptions options, List<MtpScripts.Scripted> tasks) throws Exception {
        return MtpScripts.run(model, options, tasks);
    }

    @Test
    void everyDraftIsTheMtpLayersPredictionAloneAndBatchedWithChunkedPrompts() throws Exception {
        int[] a = prompt(21, 1);
        int[] b = prompt(9, 2);
        int[] scriptA = script(a, PATTERN);
        int[] scriptB = script(b, "RAAR");
        // One step per letter, each drafting one token, the A letters' drafts kept.
        long[] alone = counts(run(new SchedulerOptions(4, 8, 256).withSpeculation(PromptLookup.mtp(0)),
                List.of(new MtpScripts.Scripted(a, scriptA))));
        assertArrayEquals(new long[] {PATTERN.length(), count(PATTERN, 'A')}, alone);
        // Prompts in chunks of 5 beside each other's decode steps.
        long[] batched = counts(run(new SchedulerOptions(4, 8, 5).withSpeculation(PromptLookup.mtp(0)),
                List.of(new MtpScripts.Scripted(a, scriptA), new MtpScripts.Scripted(b, scriptB))));
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
                List.of(new MtpScripts.Scripted(a, scriptA))));
        assertArrayEquals(new long[] {2L * pattern.length(), keptA}, alone);
        long[] batched = counts(run(new SchedulerOptions(4, 8, 5).withSpeculation(PromptLookup.mtp(2, 0)),
                List.of(new MtpScripts.Scripted(a, scriptA), new MtpScripts.Scripted(b, scriptB))));
        assertArrayEquals(new long[] {2L * (pattern.length() + 3), keptA + 3}, batched);
    }

    @Test
    void aPrefixHitRestoresTheMtpLayerToo() throws Exception {
        int[] prompt = prompt(70, 3); // whole blocks to keep
        int[] script = script(prompt, PATTERN);
        Scheduler s = MtpScripts.inTurn(model, new SchedulerOptions(4, 8, 256, 64L << 20).withSpeculation(PromptLookup.mtp(0)),
                List.of(new MtpScripts.Scripted(prompt, script), new MtpScripts.Scripted(prompt, script)));
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
        Scheduler s = run(options, List.of(new MtpScripts.Scripted(prompt, script)));
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
        Scheduler s = run(options, List.of(new MtpScripts.Scripted(prompt, new int[] {3})));
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
        List<MtpScripts.Scripted> tasks = new ArrayList<>();
        for (int[] p : prompts) {
            tasks.add(new MtpScripts.Scripted(p, script(p, "M".repeat(24))));
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
}
