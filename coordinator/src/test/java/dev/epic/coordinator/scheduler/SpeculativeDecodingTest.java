package dev.epic.coordinator.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.text.generate.FinishReason;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Speculative decoding by prompt lookup on the real fp32 engine (testdata/tiny-v3). */
class SpeculativeDecodingTest {
    private static final Tokenizer VOCAB = Tokenizer.deepSeekV3();
    private static final PromptLookup LOOKUP = new PromptLookup(4, 1, 3);
    private static Checkpoint checkpoint;
    private static Transformer model;

    @BeforeAll
    static void load() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
        model = Transformer.load(checkpoint);
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    /** A prompt that repeats itself, so that lookup finds drafts, and one that does not. */
    private static List<int[]> prompts() {
        int[] unit = {17, 301, 44, 1020, 5, 77, 930};
        int[] repeating = new int[unit.length * 5];
        for (int i = 0; i < repeating.length; i++) {
            repeating[i] = unit[i % unit.length];
        }
        return List.of(repeating, new int[] {9, 400, 12, 1999, 650, 3, 88, 120});
    }

    private static SamplingParams greedy(int maxTokens) {
        return SamplingParams.builder().temperature(0).maxTokens(maxTokens).ignoreEos(true).build();
    }

    private static List<GenerationResult> run(SchedulerOptions options, List<int[]> prompts, SamplingParams p,
            long[] counts) throws Exception {
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
            counts[0] = s.draftTokens();
            counts[1] = s.acceptedDrafts();
            counts[2] = s.steps();
            return out;
        }
    }

    /**
     * Greedy tokens are the same with drafts as without, alone and batched with a sequence that has
     * none, and drafts were accepted (alone, whole steps were saved); a wrong rollback of the rejected drafts'
     * cache positions, or a draft kept that the model would not choose, changes the tokens.
     */
    @Test
    void greedyTokensAreTheSameWithDraftsAndTakeFewerSteps() throws Exception {
        SchedulerOptions plain = new SchedulerOptions(4, 8, 256);
        for (int batch : new int[] {1, 2}) {
            List<int[]> prompts = prompts().subList(0, batch);
            long[] without = new long[3];
            long[] with = new long[3];
            List<GenerationResult> expected = run(plain, prompts, greedy(40), without);
            List<GenerationResult> actual = run(plain.withSpeculation(LOOKUP), prompts, greedy(40), with);
            for (int i = 0; i < batch; i++) {
                assertArrayEquals(expected.get(i).tokenIds(), actual.get(i).tokenIds(), "sequence " + i + " of " + batch);
                assertEquals(expected.get(i).content(), actual.get(i).content());
                assertEquals(40, actual.get(i).tokenIds().length);
            }
            assertEquals(0, without[0]);
            assertTrue(with[1] > 0, "no draft was accepted: " + with[0] + " drafted");
            assertTrue(with[1] <= with[0]);
            if (batch == 1) { // batched, the sequence without drafts takes every step
                assertTrue(with[2] < without[2], with[2] + " steps with drafts, " + without[2] + " without");
            }
        }
    }

    /**
     * A seeded, sampled request gives the same tokens with drafts as without: a draft is kept where the
     * draw, made as without drafts, picks it. Keeping every draft, or never keeping one, or drawing
     * again for a rejected draft, changes the tokens.
     */
    @Test
    void seededSamplesAreTheSameWithDraftsAsWithout() throws Exception {
        SamplingParams p = SamplingParams.builder().temperature(0.3).topP(0.95).seed(7).maxTokens(80).ignoreEos(true)
                .build();
        long[] plain = new long[3];
        long[] spec = new long[3];
        List<GenerationResult> without = run(new SchedulerOptions(4, 8, 256), prompts(), p, plain);
        List<GenerationResult> with = run(new SchedulerOptions(4, 8, 256).withSpeculation(new PromptLookup(4, 1, 2)),
                prompts(), p, spec);
        for (int i = 0; i < without.size(); i++) {
            assertArrayEquals(without.get(i).tokenIds(), with.get(i).tokenIds(), "prompt " + i);
        }
        assertTrue(spec[1] > 0 && spec[1] < spec[0], "some drafts kept and some not: " + spec[1] + " of " + spec[0]);
    }

    /**
     * Sampled sequences with drafts stop exactly at max_tokens however many drafts were in flight,
     * and differ between seeds (drafts accepted or not, the choice stays random).
     */
    @Test
    void sampledSequencesEndAtMaxTokens() throws Exception {
        SchedulerOptions spec = new SchedulerOptions(4, 8, 256).withSpeculation(new PromptLookup(6, 1, 2));
        List<int[]> prompts = List.of(prompts().get(0), prompts().get(0));
        List<GenerationResult> out = new ArrayList<>();
        long[] counts = new long[3];
        for (int maxTokens : new int[] {1, 2, 7, 23}) {
            List<CollectingSink> sinks = new ArrayList<>();
            try (Scheduler s = new Scheduler(model, spec)) {
                for (int i = 0; i < prompts.size(); i++) {
                    SamplingParams p = SamplingParams.builder().temperature(0.3).topP(0.95).seed(40 + i)
                            .maxTokens(maxTokens).ignoreEos(true).build();
                    CollectingSink sink = new CollectingSink();
                    sinks.add(sink);
                    s.submit(new GenerationTask(prompts.get(i), new Generation(VOCAB, prompts.get(i), p), sink));
                }
                s.start();
                for (CollectingSink sink : sinks) {
                    GenerationResult r = sink.done.get(60, TimeUnit.SECONDS);
                    assertEquals(maxTokens, r.tokenIds().length);
                    assertEquals(FinishReason.LENGTH, r.finishReason());
                    out.add(r);
                }
                counts[0] += s.draftTokens();
            }
        }
        assertTrue(counts[0] > 0, "nothing was drafted");
    }

    /**
     * Logprobs and stop strings apply token by token as without drafts: greedy with logprobs and a
     * stop string taken from late in the plain answer gives the same tokens, text, finish reason
     * and log-probabilities (to the bit: a drafted row is computed as a decoded one) with drafts.
     */
    @Test
    void logprobsAndStopStringsAreTheSameWithDrafts() throws Exception {
        int[] prompt = prompts().get(0);
        SamplingParams.Builder p = SamplingParams.builder().temperature(0).maxTokens(40).ignoreEos(true).logprobs(2);
        List<dev.epic.text.sampling.Logprobs> plainLogprobs = new ArrayList<>();
        long[] accepted = new long[1];
        GenerationResult plain = generate(new SchedulerOptions(4, 8, 256), prompt, p.build(), plainLogprobs, accepted);
        int at = plain.content().length() * 4 / 5; // past the loop where drafts are kept
        String stop = plain.content().substring(at, at + 3);
        plainLogprobs.clear();
        plain = generate(new SchedulerOptions(4, 8, 256), prompt, p.stop(stop).build(), plainLogprobs, accepted);
        List<dev.epic.text.sampling.Logprobs> specLogprobs = new ArrayList<>();
        GenerationResult spec = generate(new SchedulerOptions(4, 8, 256).withSpeculation(LOOKUP), prompt,
                p.stop(stop).build(), specLogprobs, accepted);
        assertTrue(accepted[0] > 0, "no draft was kept before the stop string");
        assertEquals(FinishReason.STOP, plain.finishReason(), "the stop string " + stop + " ends it");
        assertEquals(plain.finishReason(), spec.finishReason());
        assertArrayEquals(plain.tokenIds(), spec.tokenIds());
        assertEquals(plain.content(), spec.content());
        assertEquals(plainLogprobs.size(), specLogprobs.size());
        for (int i = 0; i < plainLogprobs.size(); i++) {
            var a = plainLogprobs.get(i);
            var b = specLogprobs.get(i);
            assertEquals(a.token(), b.token(), "token " + i);
            assertEquals(Float.floatToIntBits(a.logprob()), Float.floatToIntBits(b.logprob()), "logprob " + i);
            assertArrayEquals(a.topTokens(), b.topTokens(), "top tokens " + i);
            assertArrayEquals(a.topLogprobs(), b.topLogprobs(), "top logprobs " + i);
        }
    }

    /** One generation on a fresh scheduler; its logprobs are added to {@code logprobs}, the drafts kept go to accepted[0]. */
    private static GenerationResult generate(SchedulerOptions options, int[] prompt, SamplingParams p,
            List<dev.epic.text.sampling.Logprobs> logprobs, long[] accepted) throws Exception {
        CollectingSink sink = new CollectingSink() {
            @Override
            public void delta(dev.epic.text.generate.Delta d) {
                logprobs.addAll(d.logprobs());
                super.delta(d);
            }
        };
        try (Scheduler s = new Scheduler(model, options)) {
            s.submit(new GenerationTask(prompt, new Generation(VOCAB, prompt, p), sink));
            s.start();
            GenerationResult r = sink.done.get(60, TimeUnit.SECONDS);
            accepted[0] = s.acceptedDrafts();
            return r;
        }
    }

    /** With more sequences running than the limit, no step drafts; at the limit they do. */
    @Test
    void aBusyBatchDoesNotDraft() throws Exception {
        List<int[]> two = List.of(prompts().get(0), prompts().get(0));
        long[] busy = new long[3];
        run(new SchedulerOptions(4, 8, 256).withSpeculation(new PromptLookup(4, 1, 3, 1)), two, greedy(30), busy);
        assertEquals(0, busy[0], "drafted with two running and a limit of one");
        long[] within = new long[3];
        run(new SchedulerOptions(4, 8, 256).withSpeculation(new PromptLookup(4, 1, 3, 2)), two, greedy(30), within);
        assertTrue(within[0] > 0, "no drafts with two running and a limit of two");
    }

    @Test
    void lookupProposesWhatFollowedTheLatestLongestMatch() {
        PromptLookup l = new PromptLookup(3, 1, 3);
        // ... 1 2 3 [9 9] ... 1 2 3 [4 5 6] ... 1 2 3 -> the 3-gram's latest occurrence is followed by 4 5 6
        int[] c = {1, 2, 3, 9, 9, 7, 1, 2, 3, 4, 5, 6, 8, 1, 2, 3};
        assertArrayEquals(new int[] {4, 5, 6}, l.propose(c, c.length, 10));
        assertArrayEquals(new int[] {4, 5}, l.propose(c, c.length, 2));
        assertArrayEquals(new int[] {}, new PromptLookup(0, 1, 3).propose(c, c.length, 10));
        // No 3- or 2-gram recurs, the 1-gram 6 does: what followed it, up to the end of the context.
        int[] d = {6, 1, 6};
        assertArrayEquals(new int[] {1, 6}, l.propose(d, d.length, 10));
        assertArrayEquals(new int[] {}, new PromptLookup(3, 2, 3).propose(d, d.length, 10));
        assertArrayEquals(new int[] {}, l.propose(new int[] {1, 2, 3}, 3, 10));
        // A period-1 loop overlapping its own suffix still proposes.
        int[] e = {5, 5, 5, 5};
        assertArrayEquals(new int[] {5}, l.propose(e, e.length, 10));
    }
}
