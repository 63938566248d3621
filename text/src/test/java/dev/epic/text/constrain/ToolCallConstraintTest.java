package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.chat.ChatMessage;
import dev.epic.text.chat.ChatTemplate;
import dev.epic.text.chat.ToolCall;
import dev.epic.text.generate.Delta;
import dev.epic.text.generate.FinishReason;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationOptions;
import dev.epic.text.output.DeepSeekMarkers;
import dev.epic.text.sampling.InvalidSamplingException;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import dev.epic.text.tokenizer.TokenizerConfig;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** Forced tool calls over DeepSeek-V3's real vocabulary and chat templates. */
class ToolCallConstraintTest {
    private static final Tokenizer V3 = Tokenizer.deepSeekV3();
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String WEATHER = """
            {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
             "required": ["city", "unit"], "additionalProperties": false}""";
    private static final List<ToolCallGrammar.Tool> TOOLS = List.of(
            new ToolCallGrammar.Tool("get_weather", WEATHER),
            new ToolCallGrammar.Tool("get_time", "{\"type\": \"object\", \"properties\": {}, "
                    + "\"additionalProperties\": false}"));
    private static final int EOS = V3.addedTokenId(DeepSeekMarkers.EOS).orElseThrow();

    /** The block the chat templates write for an assistant's two calls, from "<｜tool▁calls▁begin｜>" to its end. */
    private static String renderedCalls(ChatTemplate template) {
        List<ToolCall> calls = List.of(new ToolCall("call_1", "function", "get_weather", "{\"city\": \"Paris\", \"unit\": \"c\"}"),
                new ToolCall("call_2", "function", "get_time", "{}"));
        String text = template.render(List.of(new ChatMessage("user", "Weather and time in Paris?", null, null, null, null),
                new ChatMessage("assistant", null, calls, null, null, null)), null, false);
        int from = text.indexOf(DeepSeekMarkers.TOOL_CALLS_BEGIN);
        int to = text.indexOf(DeepSeekMarkers.TOOL_CALLS_END) + DeepSeekMarkers.TOOL_CALLS_END.length();
        assertTrue(from >= 0 && to > from, text);
        return text.substring(from, to);
    }

    /** What the model's own templates write is what the constraint allows, token by token. */
    @Test
    void theTemplatesCallsAreAllowedTokenByToken() {
        TokenizerConfig config = TokenizerConfig.deepSeekV3();
        for (ChatTemplate template : List.of(ChatTemplate.fromConfig(config), ChatTemplate.deepSeekR1_0528(config))) {
            String block = renderedCalls(template);
            ToolCallConstraint c = new ToolCallConstraint(V3, ToolCallGrammar.of(TOOLS, true));
            int[] ids = V3.encode(block);
            for (int i = 0; i < ids.length; i++) {
                assertFalse(c.complete());
                float[] logits = new float[V3.size()];
                c.restrict(logits, logits.length, Set.of(EOS));
                assertEquals(0f, logits[ids[i]], "token " + i + " of " + block);
                assertEquals(Float.NEGATIVE_INFINITY, logits[EOS], "no end before the block closes");
                c.accept(ids[i]);
            }
            assertTrue(c.complete());
            assertEquals(2, c.calls());
            float[] logits = new float[V3.size()];
            c.restrict(logits, logits.length, Set.of(EOS));
            for (int id = 0; id < logits.length; id++) {
                assertEquals(id == EOS ? 0f : Float.NEGATIVE_INFINITY, logits[id], "after the block only the end: " + id);
            }
        }
    }

    /** A second call, a wrong name, a marker inside the arguments and text before the block are all refused. */
    @Test
    void textOutsideTheGrammarIsRefused() {
        ToolCallConstraint single = new ToolCallConstraint(V3, ToolCallGrammar.of(TOOLS.subList(1, 2), false));
        String one = DeepSeekMarkers.TOOL_CALLS_BEGIN + DeepSeekMarkers.TOOL_CALL_BEGIN + "function" + DeepSeekMarkers.TOOL_SEP
                + "get_time\n```json\n{}\n```" + DeepSeekMarkers.TOOL_CALL_END;
        for (int id : V3.encode(one)) {
            single.accept(id);
        }
        float[] logits = new float[V3.size()];
        single.restrict(logits, logits.length, Set.of(EOS));
        int callsEnd = V3.addedTokenId(DeepSeekMarkers.TOOL_CALLS_END).orElseThrow();
        for (int id = 0; id < logits.length; id++) {
            assertEquals(id == callsEnd ? 0f : Float.NEGATIVE_INFINITY, logits[id], "one call, then the block ends: " + id);
        }
        assertThrows(IllegalStateException.class, () -> single.accept(V3.encode("\n")[0]));

        ToolCallConstraint named = new ToolCallConstraint(V3, ToolCallGrammar.of(TOOLS.subList(1, 2), false));
        for (int id : V3.encode(DeepSeekMarkers.TOOL_CALLS_BEGIN + DeepSeekMarkers.TOOL_CALL_BEGIN + "function"
                + DeepSeekMarkers.TOOL_SEP)) {
            named.accept(id);
        }
        logits = new float[V3.size()];
        named.restrict(logits, logits.length, Set.of(EOS));
        for (int id = 0; id < logits.length; id++) {
            if (logits[id] == 0f) {
                assertTrue("get_time\n```json\n".startsWith(new String(V3.tokenBytes(id), StandardCharsets.UTF_8)),
                        "only the named tool's head may start: " + id);
            }
        }
        assertThrows(IllegalStateException.class, () -> {
            for (int id : V3.encode("get_weather")) {
                named.accept(id); // "get" may come, "_weather" may not
            }
        });

        ToolCallConstraint args = new ToolCallConstraint(V3, ToolCallGrammar.of(TOOLS, true));
        for (int id : V3.encode(DeepSeekMarkers.TOOL_CALLS_BEGIN + DeepSeekMarkers.TOOL_CALL_BEGIN + "function"
                + DeepSeekMarkers.TOOL_SEP + "get_weather\n```json\n{\"city\": \"")) {
            args.accept(id);
        }
        logits = new float[V3.size()];
        args.restrict(logits, logits.length, Set.of(EOS));
        for (String marker : List.of(DeepSeekMarkers.TOOL_CALLS_BEGIN, DeepSeekMarkers.TOOL_CALLS_END,
                DeepSeekMarkers.TOOL_CALL_BEGIN, DeepSeekMarkers.TOOL_CALL_END, DeepSeekMarkers.TOOL_SEP)) {
            assertEquals(Float.NEGATIVE_INFINITY, logits[V3.addedTokenId(marker).orElseThrow()], marker + " inside a string");
        }
        assertEquals(0f, logits[V3.encode("Paris")[0]]);

        ToolCallConstraint fresh = new ToolCallConstraint(V3, ToolCallGrammar.of(TOOLS, true));
        logits = new float[V3.size()];
        fresh.restrict(logits, logits.length, Set.of(EOS));
        int callsBegin = V3.addedTokenId(DeepSeekMarkers.TOOL_CALLS_BEGIN).orElseThrow();
        for (int id = 0; id < logits.length; id++) {
            assertEquals(id == callsBegin ? 0f : Float.NEGATIVE_INFINITY, logits[id], "the block starts at once: " + id);
        }
        assertThrows(IllegalStateException.class, () -> fresh.accept(V3.encode("Sure")[0]));
    }


    /** Between markers the cached mask is exactly the tokens whose bytes can follow. */
    @Test
    void theMaskBetweenMarkersIsExactlyTheTokensThatCanFollow() {
        ToolCallGrammar grammar = ToolCallGrammar.of(TOOLS, true);
        TokenMask<CallCursor> mask = grammar.mask(V3);
        List<CallCursor> states = new ArrayList<>();
        for (String typed : List.of("", "func")) {
            CallCursor c = new CallCursor(grammar).startType();
            assertTrue(c.step(typed.getBytes(StandardCharsets.UTF_8)));
            states.add(c);
        }
        states.add(new CallCursor(grammar).startBetween());
        for (String typed : List.of("", "get_", "get_t", "get_weather\n``", "get_weather\n```json\n",
                "get_weather\n```json\n{\"city\": \"Pa", "get_weather\n```json\n{\"city\": \"Paris\", \"unit\": ",
                "get_weather\n```json\n{\"city\": \"Paris\", \"unit\": \"f\"}", "get_time\n```json\n{}  ",
                "get_time\n```json\n{}\n`")) {
            CallCursor c = new CallCursor(grammar).startBody();
            assertTrue(c.step(typed.getBytes(StandardCharsets.UTF_8)), typed);
            states.add(c);
        }
        for (CallCursor at : states) {
            BitSet expected = BruteForce.allowed(V3, at);
            assertFalse(expected.isEmpty());
            assertEquals(expected, mask.allowed(at), at.key().toString());
        }
        CallCursor closed = new CallCursor(grammar).startBody();
        assertTrue(closed.step("get_time\n```json\n{}\n```".getBytes(StandardCharsets.UTF_8)));
        assertTrue(closed.complete());
        assertTrue(BruteForce.allowed(V3, closed).isEmpty(), "nothing follows the closing fence but a marker");
    }

    /**
     * Sampling from random logits under the constraint: every answer is parsed into calls of the given
     * tools whose arguments match their schemas. Closing bytes and the end marker get a boost so most
     * runs finish within the token limit.
     */
    @Test
    void constrainedSamplingWritesValidCalls() throws Exception {
        float[] bias = new float[V3.size()];
        for (int id = 0; id < V3.size(); id++) {
            String t = new String(V3.tokenBytes(id), StandardCharsets.UTF_8);
            bias[id] = t.contains("\"") || t.contains("}") || t.contains("`") ? 6f : 0f;
        }
        bias[V3.addedTokenId(DeepSeekMarkers.TOOL_CALLS_END).orElseThrow()] = 8f;
        Random rng = new Random(7);
        int finished = 0;
        for (int run = 0; run < 12; run++) {
            boolean parallel = run % 2 == 0;
            Generation g = new Generation(V3, new int[] {0}, SamplingParams.builder().temperature(1f).seed(run)
                    .maxTokens(200).build(), GenerationOptions.defaults().withToolCalls(ToolCallGrammar.of(TOOLS, parallel)));
            List<dev.epic.text.output.ToolCall> calls = new ArrayList<>();
            StringBuilder content = new StringBuilder();
            while (!g.finished()) {
                float[] logits = new float[V3.size()];
                for (int i = 0; i < logits.length; i++) {
                    logits[i] = (float) rng.nextGaussian() * 2 + bias[i];
                }
                Delta d = g.accept(g.sample(logits));
                calls.addAll(d.toolCalls());
                content.append(d.content());
            }
            assertEquals("", content.toString().strip(), "a forced answer has no content");
            if (g.finishReason() == FinishReason.LENGTH) {
                continue;
            }
            finished++;
            assertEquals(FinishReason.TOOL_CALLS, g.finishReason());
            assertFalse(calls.isEmpty());
            assertTrue(parallel || calls.size() == 1, "one call without parallel calls: " + calls);
            for (dev.epic.text.output.ToolCall call : calls) {
                assertEquals(dev.epic.text.output.ToolCall.Status.COMPLETE, call.status(), call.toString());
                JsonNode a = JSON.readTree(call.arguments());
                if (call.name().equals("get_weather")) {
                    assertTrue(a.path("city").isTextual(), call.arguments());
                    assertTrue(Set.of("c", "f").contains(a.path("unit").asText()), call.arguments());
                    assertEquals(2, a.size(), call.arguments());
                } else {
                    assertEquals("get_time", call.name());
                    assertEquals(0, a.size(), call.arguments());
                }
            }
        }
        assertTrue(finished >= 6, "most runs close their calls: " + finished);
    }

    @Test
    void refusals() {
        assertThrows(IllegalArgumentException.class, () -> ToolCallGrammar.of(List.of(), true));
        assertThrows(IllegalArgumentException.class, () -> ToolCallGrammar.of(List.of(TOOLS.get(0), TOOLS.get(0)), true));
        assertThrows(IllegalArgumentException.class, () -> new ToolCallGrammar.Tool("two\nlines", WEATHER));
        for (SamplingParams p : new SamplingParams[] {SamplingParams.builder().ignoreEos(true).build(),
                SamplingParams.builder().minTokens(3).build()}) {
            assertThrows(InvalidSamplingException.class, () -> new Generation(V3, new int[] {0}, p,
                    GenerationOptions.defaults().withToolCalls(ToolCallGrammar.of(TOOLS, true))));
        }
    }
}
