package dev.epic.text.generate;

import static dev.epic.text.output.DeepSeekMarkers.EOS;
import static dev.epic.text.output.DeepSeekMarkers.THINK_CLOSE;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALLS_BEGIN;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALLS_END;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALL_BEGIN;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALL_END;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_SEP;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.text.output.FixtureVocabulary;
import dev.epic.text.output.ReasoningMode;
import dev.epic.text.output.ToolCall;
import dev.epic.text.sampling.SamplingParams;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class GenerationTest {
    private static final SamplingParams GREEDY = SamplingParams.builder().temperature(0).build();

    private final FixtureVocabulary r1 = FixtureVocabulary.deepSeekLike(true);
    private final int[] prompt = r1.ids("<｜begin▁of▁sentence｜>", "Hello", "<think>");

    private static GenerationOptions opts(ReasoningMode mode) {
        AtomicInteger n = new AtomicInteger();
        return GenerationOptions.defaults().withReasoning(mode).withToolCallIds(() -> "call_" + n.getAndIncrement());
    }

    private GenerationResult run(FixtureVocabulary v, int[] prompt, SamplingParams p, GenerationOptions o,
                                 List<Delta> deltas, int... script) {
        ScriptedLogits model = new ScriptedLogits(v.size(), prompt, script);
        return GenerationLoop.run(model, prompt, new Generation(v, prompt, p, o), deltas::add, () -> false);
    }

    @Test
    void reasoningThenContentThenToolCallsEndsWithToolCalls() {
        int[] script = r1.ids("Need", " weather", THINK_CLOSE, "\n\n", "Checking.", TOOL_CALLS_BEGIN, TOOL_CALL_BEGIN,
                "function", TOOL_SEP, "get_weather\n```json\n", "{\"city\":", " \"Paris\"}", "\n```", TOOL_CALL_END,
                TOOL_CALLS_END, EOS);
        List<Delta> deltas = new ArrayList<>();
        GenerationResult res = run(r1, prompt, GREEDY, opts(ReasoningMode.OPEN), deltas, script);

        assertEquals("Need weather", res.reasoning());
        assertEquals("\n\nChecking.", res.content());
        assertEquals(List.of(new ToolCall(0, "call_0", "get_weather", "{\"city\": \"Paris\"}", ToolCall.Status.COMPLETE, null)),
                res.toolCalls());
        assertEquals(FinishReason.TOOL_CALLS, res.finishReason());
        assertEquals("tool_calls", res.finishReason().apiName());
        assertEquals(new Usage(3, script.length), res.usage());
        assertArrayEquals(script, res.tokenIds());
        // streaming: the call arrives with the token that closes it; only the last delta has a finish reason
        int closing = Arrays.asList(Arrays.stream(script).boxed().toArray()).indexOf(r1.id(TOOL_CALL_END));
        assertEquals(1, deltas.stream().filter(d -> !d.toolCalls().isEmpty()).count());
        assertEquals(r1.id(TOOL_CALL_END), deltas.stream().filter(d -> !d.toolCalls().isEmpty()).findFirst()
                .orElseThrow().tokenIds()[0]);
        assertTrue(closing > 0);
        assertTrue(deltas.getLast().finished());
        assertEquals(1, deltas.stream().filter(Delta::finished).count());
    }

    @Test
    void v3VocabularyWithSplitThinkTags() {
        FixtureVocabulary v3 = FixtureVocabulary.deepSeekLike(false);
        int[] p = v3.ids("<｜begin▁of▁sentence｜>", "Hi");
        int[] script = v3.ids("<th", "ink>\n", "plan", " </", "thi", "nk>", "Answer", EOS);
        GenerationResult res = run(v3, p, GREEDY, opts(ReasoningMode.DETECT), new ArrayList<>(), script);
        assertEquals("\nplan ", res.reasoning());
        assertEquals("Answer", res.content());
        assertEquals(FinishReason.EOS, res.finishReason());
        assertEquals("stop", res.finishReason().apiName());
    }

    @Test
    void ignoreEosKeepsGoingUntilMaxTokens() {
        int[] script = r1.ids("a", EOS, "b", EOS, "c");
        SamplingParams p = GREEDY.toBuilder().ignoreEos(true).maxTokens(5).build();
        GenerationResult res = run(r1, prompt, p, opts(ReasoningMode.NONE), new ArrayList<>(), script);
        assertEquals("abc", res.content()); // EOS is special: skipped in text
        assertEquals(FinishReason.LENGTH, res.finishReason());
        assertEquals(5, res.usage().completionTokens());
    }

    @Test
    void logprobsComeWithEachAcceptedTokenWhenAsked() {
        int[] script = r1.ids("a", "b", "c");
        List<Delta> deltas = new ArrayList<>();
        SamplingParams p = GREEDY.toBuilder().ignoreEos(true).maxTokens(3).logprobs(2).build();
        run(r1, prompt, p, opts(ReasoningMode.NONE), deltas, script);
        assertEquals(3, deltas.size());
        for (int i = 0; i < 3; i++) {
            Delta d = deltas.get(i);
            assertEquals(1, d.logprobs().size());
            var lp = d.logprobs().getFirst();
            assertEquals(script[i], lp.token());
            // Greedy picks the most likely token within the vocabulary; the padded rows past it never count.
            assertEquals(script[i], lp.topTokens()[0]);
            assertEquals(2, lp.topTokens().length);
            assertEquals(lp.topLogprobs()[0], lp.logprob());
            assertTrue(lp.logprob() < 0 && lp.topLogprobs()[1] < lp.logprob());
        }
        List<Delta> plain = new ArrayList<>();
        run(r1, prompt, GREEDY.toBuilder().ignoreEos(true).maxTokens(3).build(), opts(ReasoningMode.NONE), plain, script);
        assertTrue(plain.stream().allMatch(d -> d.logprobs().isEmpty()));
    }

    @Test
    void stopTokenIdEndsWithoutDecodingIt() {
        int stopId = r1.piece("###");
        int[] script = r1.ids("x", "###", "never");
        SamplingParams p = GREEDY.toBuilder().stopTokenIds(Set.of(stopId)).build();
        GenerationResult res = run(r1, prompt, p, opts(ReasoningMode.NONE), new ArrayList<>(), script);
        assertEquals("x", res.content());
        assertEquals(FinishReason.STOP, res.finishReason());
        assertEquals(2, res.usage().completionTokens());
    }

    /** vLLM's min_tokens: EOS and stop tokens cannot be drawn, and stop strings do not count, before it. */
    @Test
    void minTokensHoldsBackEveryWayOfEnding() {
        int eos = r1.ids(EOS)[0];
        int stopId = r1.piece("###");
        int a = r1.piece("a");
        Generation g = new Generation(r1, prompt, GREEDY.toBuilder().minTokens(2).stopTokenIds(Set.of(stopId)).build(),
                opts(ReasoningMode.NONE));
        float[] logits = new float[r1.size()];
        logits[eos] = 10;
        logits[stopId] = 9;
        logits[a] = 5;
        assertEquals(a, g.sample(logits.clone()));
        g.accept(a);
        assertEquals(a, g.sample(logits.clone()));
        g.accept(a);
        assertEquals(eos, g.sample(logits.clone()), "two tokens in: EOS may end it");

        int[] script = r1.ids("x", "###", "y", "###", "z");
        SamplingParams p = GREEDY.toBuilder().stop("###").minTokens(3).build();
        GenerationResult res = run(r1, prompt, p, opts(ReasoningMode.NONE), new ArrayList<>(), script);
        assertEquals("x###y", res.content(), "the first ### came before min_tokens");
        assertEquals(FinishReason.STOP, res.finishReason());
        assertEquals(4, res.usage().completionTokens());
        res = run(r1, prompt, p.toBuilder().includeStopStrInOutput(true).build(), opts(ReasoningMode.NONE),
                new ArrayList<>(), script);
        assertEquals("x###y###", res.content());
    }

    @Test
    void stopStringSpanningTokens() {
        int[] script = r1.ids("The end", " is E", "N", "D!", "more");
        SamplingParams p = GREEDY.toBuilder().stop("END").build();
        List<Delta> deltas = new ArrayList<>();
        GenerationResult res = run(r1, prompt, p, opts(ReasoningMode.NONE), deltas, script);
        assertEquals("The end is ", res.content());
        assertEquals(FinishReason.STOP, res.finishReason());
        assertEquals(4, res.usage().completionTokens());
        assertEquals(List.of("The end", " is ", ""), deltas.stream().map(Delta::content).toList());
    }

    @Test
    void stopStringInsideReasoningStopsToo() {
        int[] script = r1.ids("think", "ing STOP", "x");
        SamplingParams p = GREEDY.toBuilder().stop("STOP").build();
        GenerationResult res = run(r1, prompt, p, opts(ReasoningMode.OPEN), new ArrayList<>(), script);
        assertEquals("thinking ", res.reasoning());
        assertEquals(FinishReason.STOP, res.finishReason());
    }

    @Test
    void maxTokensCutsAToolCallWhichIsReportedIncomplete() {
        int[] script = r1.ids("ok", TOOL_CALLS_BEGIN, TOOL_CALL_BEGIN, "function", TOOL_SEP, "f\n```json\n", "{\"a\": ", "1");
        SamplingParams p = GREEDY.toBuilder().maxTokens(7).build();
        GenerationResult res = run(r1, prompt, p, opts(ReasoningMode.NONE), new ArrayList<>(), script);
        assertEquals("ok", res.content());
        assertEquals(FinishReason.LENGTH, res.finishReason());
        assertEquals(1, res.toolCalls().size());
        ToolCall c = res.toolCalls().get(0);
        assertEquals(ToolCall.Status.INCOMPLETE, c.status());
        assertEquals("f", c.name());
        assertEquals("{\"a\":", c.arguments());
    }

    @Test
    void malformedCallStillFinishesAsToolCallsWithTheError() {
        int[] script = r1.ids(TOOL_CALLS_BEGIN, TOOL_CALL_BEGIN, "f", TOOL_SEP, "{oops}", TOOL_CALL_END, TOOL_CALLS_END, EOS);
        GenerationResult res = run(r1, prompt, GREEDY, opts(ReasoningMode.NONE), new ArrayList<>(), script);
        assertEquals(ToolCall.Status.MALFORMED, res.toolCalls().get(0).status());
        assertTrue(res.toolCalls().get(0).error().contains("not valid JSON"));
        assertEquals(FinishReason.TOOL_CALLS, res.finishReason());
    }

    @Test
    void eosInsideACallIsEosWithTheCallIncomplete() {
        int[] script = r1.ids("hm", TOOL_CALLS_BEGIN, TOOL_CALL_BEGIN, "f", TOOL_SEP, "{\"a\"", EOS);
        GenerationResult res = run(r1, prompt, GREEDY, opts(ReasoningMode.NONE), new ArrayList<>(), script);
        assertEquals("hm", res.content());
        assertEquals(FinishReason.EOS, res.finishReason());
        assertEquals(ToolCall.Status.INCOMPLETE, res.toolCalls().get(0).status());
        assertEquals("f", res.toolCalls().get(0).name());
    }

    @Test
    void contextLengthLimitsGeneration() {
        int[] script = r1.ids("a", "b", "c", "d");
        GenerationResult res = run(r1, prompt, GREEDY, opts(ReasoningMode.NONE).withMaxContextLength(6),
                new ArrayList<>(), script);
        assertEquals("abc", res.content());
        assertEquals(FinishReason.LENGTH, res.finishReason());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new Generation(r1, prompt, GREEDY, opts(ReasoningMode.NONE).withMaxContextLength(3)));
        assertTrue(e.getMessage().contains("3 tokens"), e.getMessage());
    }

    @Test
    void cancellationFlushesHeldTextAndEnds() {
        int[] script = r1.ids("go", " ST", "OP");
        SamplingParams p = GREEDY.toBuilder().stop("STOP").build();
        ScriptedLogits model = new ScriptedLogits(r1.size(), prompt, script);
        AtomicInteger steps = new AtomicInteger();
        List<Delta> deltas = new ArrayList<>();
        Generation g = new Generation(r1, prompt, p, opts(ReasoningMode.NONE));
        GenerationResult res = GenerationLoop.run(model, prompt, g, deltas::add, () -> steps.incrementAndGet() > 2);
        assertEquals("go ST", res.content()); // " ST" was held as a possible stop, released on cancel
        assertEquals(FinishReason.CANCELLED, res.finishReason());
        assertEquals(2, res.usage().completionTokens());
        assertEquals(0, deltas.getLast().tokenIds().length);
    }

    @Test
    void coordinatorStyleStepping() {
        // The coordinator computes logits itself, then calls sample + accept per sequence.
        Generation g = new Generation(r1, prompt, GREEDY, opts(ReasoningMode.NONE));
        float[] logits = new float[r1.size() + 100];
        Arrays.fill(logits, -1f);
        logits[r1.size() + 50] = 99f; // padded row: ignored
        logits[r1.piece("x")] = 3f;
        int t = g.sample(logits);
        assertEquals(r1.piece("x"), t);
        Delta d = g.accept(t);
        assertEquals("x", d.content());
        assertNull(d.finishReason());
        assertFalse(g.finished());
        Delta end = g.accept(r1.id(EOS)); // a token chosen elsewhere is accepted too
        assertEquals(FinishReason.EOS, end.finishReason());
        assertTrue(g.finished());
        assertThrows(IllegalStateException.class, () -> g.accept(t));
        assertThrows(IllegalArgumentException.class, () -> new Generation(r1, prompt, GREEDY).accept(r1.size()));
    }

    /** logit_bias moves the sampled token (not the reported logprobs); ids past the vocabulary are refused. */
    @Test
    void logitBiasShiftsTheChoiceButNotTheLogprobs() {
        int x = r1.piece("x"), y = r1.piece("y");
        SamplingParams p = GREEDY.toBuilder().logitBias(java.util.Map.of(y, 5f, x, -100f)).logprobs(1).build();
        Generation g = new Generation(r1, prompt, p, opts(ReasoningMode.NONE));
        float[] logits = new float[r1.size()];
        Arrays.fill(logits, -1f);
        logits[x] = 3f;
        logits[y] = 0f;
        int t = g.sample(logits);
        assertEquals(y, t, "x banned, y lifted past it");
        Delta d = g.accept(t);
        assertEquals(x, d.logprobs().getFirst().topTokens()[0], "the model's own ranking is reported");
        assertThrows(dev.epic.text.sampling.InvalidSamplingException.class, () -> new Generation(r1, prompt,
                GREEDY.toBuilder().logitBias(java.util.Map.of(r1.size(), 1f)).build(), opts(ReasoningMode.NONE)));
        assertThrows(dev.epic.text.sampling.InvalidSamplingException.class,
                () -> GREEDY.toBuilder().logitBias(java.util.Map.of(x, 101f)).build());
    }

    @Test
    void sameSeedSameTokensThroughGeneration() {
        float[] flat = new float[r1.size()];
        for (int i = 0; i < flat.length; i++) {
            flat[i] = (i * 37 % 11) * 0.2f;
        }
        flat[r1.id(EOS)] = -100f;
        SamplingParams p = SamplingParams.builder().temperature(1.0).topP(1.0).seed(1234).maxTokens(40).build();
        assertArrayEquals(sampleRun(flat, p), sampleRun(flat, p));
        SamplingParams other = p.toBuilder().seed(1235).build();
        assertFalse(Arrays.equals(sampleRun(flat, p), sampleRun(flat, other)));
    }

    private int[] sampleRun(float[] logits, SamplingParams p) {
        Generation g = new Generation(r1, prompt, p, opts(ReasoningMode.NONE));
        int[] out = new int[p.maxTokens()];
        for (int i = 0; !g.finished(); i++) {
            out[i] = g.sample(logits.clone());
            g.accept(out[i]);
        }
        return out;
    }

    @Test
    void repetitionPenaltyCoversThePrompt() {
        // "Hello" is in the prompt with the best logit; a repetition penalty of 4 pushes it below "other".
        int other = r1.piece("other");
        float[] logits = new float[r1.size()];
        Arrays.fill(logits, -10f);
        logits[r1.piece("Hello")] = 2f;
        logits[other] = 1f;
        SamplingParams p = GREEDY.toBuilder().repetitionPenalty(4).build();
        assertEquals(other, new Generation(r1, prompt, p).sample(logits.clone()));
        assertEquals(r1.piece("Hello"), new Generation(r1, prompt, GREEDY).sample(logits.clone()));
    }
}
