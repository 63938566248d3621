package dev.epic.text.output;

import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALLS_BEGIN;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALLS_END;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALL_BEGIN;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALL_END;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_SEP;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

class ToolCallParserTest {

    private static String v3Call(String name, String args) {
        return TOOL_CALL_BEGIN + "function" + TOOL_SEP + name + "\n```json\n" + args + "\n```" + TOOL_CALL_END;
    }

    private record Out(String content, List<ToolCall> calls) {
    }

    /** Feeds the text in pieces of {@code step} chars (1 = worst-case token split) and collects the output. */
    private static Out feed(String text, int step) {
        AtomicInteger n = new AtomicInteger();
        ToolCallParser p = new ToolCallParser(() -> "call_" + n.getAndIncrement());
        StringBuilder content = new StringBuilder();
        List<ToolCall> calls = new ArrayList<>();
        for (int i = 0; i < text.length(); i += step) {
            ToolCallParser.Result r = p.push(text.substring(i, Math.min(text.length(), i + step)));
            content.append(r.content());
            calls.addAll(r.calls());
        }
        ToolCallParser.Result r = p.finish();
        content.append(r.content());
        calls.addAll(r.calls());
        return new Out(content.toString(), calls);
    }

    private static Out feedTokens(List<String> tokens) {
        return feed(String.join("", tokens), Integer.MAX_VALUE);
    }

    @Test
    void oneCallWithContentBefore() {
        String text = "Let me check." + TOOL_CALLS_BEGIN + v3Call("get_weather", "{\"city\": \"Paris\"}") + TOOL_CALLS_END;
        for (int step : new int[] {1, 3, 1000}) {
            Out o = feed(text, step);
            assertEquals("Let me check.", o.content(), "step " + step);
            assertEquals(1, o.calls().size());
            ToolCall c = o.calls().get(0);
            assertEquals(new ToolCall(0, "call_0", "get_weather", "{\"city\": \"Paris\"}", ToolCall.Status.COMPLETE, null), c);
            assertEquals("function", c.type());
        }
    }

    /**
     * A long piece of content with a '<' in it, then the call in one piece: the scan position must
     * not carry over from the longer text held before (the marker was missed and leaked as content).
     */
    @Test
    void aCallRightAfterLongContentIsFound() {
        String before = "a<bcdefghijklmnopqrstuvwxyz";
        for (List<String> pieces : List.of(List.of(before, TOOL_CALLS_BEGIN + v3Call("f", "{}") + TOOL_CALLS_END),
                List.of(before, TOOL_CALLS_BEGIN, v3Call("f", "{}"), TOOL_CALLS_END))) {
            ToolCallParser p = new ToolCallParser(() -> "call_0");
            StringBuilder content = new StringBuilder();
            List<ToolCall> calls = new ArrayList<>();
            for (String piece : pieces) { // one push per piece, as tokens arrive
                ToolCallParser.Result r = p.push(piece);
                content.append(r.content());
                calls.addAll(r.calls());
            }
            ToolCallParser.Result r = p.finish();
            content.append(r.content());
            calls.addAll(r.calls());
            assertEquals(before, content.toString(), pieces.size() + " pieces");
            assertEquals(1, calls.size(), pieces.size() + " pieces");
            assertEquals("f", calls.get(0).name());
        }
    }

    @Test
    void severalCallsSeparatedByNewlines() {
        String text = TOOL_CALLS_BEGIN + v3Call("a", "{\"x\": 1}") + "\n" + v3Call("b", "{}") + "\n"
                + v3Call("c", "{\"nested\": {\"y\": [1, 2]}}") + TOOL_CALLS_END;
        Out o = feed(text, 2);
        assertEquals("", o.content());
        assertEquals(List.of("a", "b", "c"), o.calls().stream().map(ToolCall::name).toList());
        assertEquals(List.of(0, 1, 2), o.calls().stream().map(ToolCall::index).toList());
        assertEquals(List.of("call_0", "call_1", "call_2"), o.calls().stream().map(ToolCall::id).toList());
        assertEquals("{\"nested\": {\"y\": [1, 2]}}", o.calls().get(2).arguments());
        assertTrue(o.calls().stream().allMatch(ToolCall::ok));
    }

    @Test
    void v31Format() {
        String text = "ok" + TOOL_CALLS_BEGIN + TOOL_CALL_BEGIN + "search" + TOOL_SEP + "{\"q\": \"java\"}" + TOOL_CALL_END
                + TOOL_CALL_BEGIN + "open" + TOOL_SEP + "{\"id\": 3}" + TOOL_CALL_END + TOOL_CALLS_END;
        Out o = feed(text, 1);
        assertEquals("ok", o.content());
        assertEquals(2, o.calls().size());
        assertEquals("search", o.calls().get(0).name());
        assertEquals("{\"q\": \"java\"}", o.calls().get(0).arguments());
        assertEquals("open", o.calls().get(1).name());
        assertTrue(o.calls().get(1).ok());
    }

    @Test
    void markersAsSingleTokens() {
        Out o = feedTokens(List.of("Sure", TOOL_CALLS_BEGIN, TOOL_CALL_BEGIN, "function", TOOL_SEP, "f", "\n```", "json\n",
                "{\"a\":", " true}", "\n```", TOOL_CALL_END, TOOL_CALLS_END));
        assertEquals("Sure", o.content());
        assertEquals("{\"a\": true}", o.calls().get(0).arguments());
    }

    @Test
    void malformedJsonIsReportedOnThatCall() {
        String text = TOOL_CALLS_BEGIN + v3Call("good", "{\"k\": 1}") + v3Call("bad", "{\"k\": 1,,}")
                + v3Call("array", "[1, 2]") + v3Call("trailing", "{} {}") + TOOL_CALLS_END;
        Out o = feed(text, 5);
        assertEquals(4, o.calls().size());
        assertEquals(ToolCall.Status.COMPLETE, o.calls().get(0).status());
        ToolCall bad = o.calls().get(1);
        assertEquals(ToolCall.Status.MALFORMED, bad.status());
        assertEquals("{\"k\": 1,,}", bad.arguments());
        assertTrue(bad.error().contains("'bad'") && bad.error().contains("not valid JSON"), bad.error());
        assertEquals(ToolCall.Status.MALFORMED, o.calls().get(2).status());
        assertTrue(o.calls().get(2).error().contains("JSON object"), o.calls().get(2).error());
        assertEquals(ToolCall.Status.MALFORMED, o.calls().get(3).status());
    }

    @Test
    void callCutOffIsIncomplete() {
        String text = "x" + TOOL_CALLS_BEGIN + v3Call("first", "{}") + TOOL_CALL_BEGIN + "function" + TOOL_SEP
                + "second\n```json\n{\"city\": \"Par";
        Out o = feed(text, 4);
        assertEquals("x", o.content());
        assertEquals(2, o.calls().size());
        assertTrue(o.calls().get(0).ok());
        ToolCall cut = o.calls().get(1);
        assertEquals(ToolCall.Status.INCOMPLETE, cut.status());
        assertEquals("second", cut.name());
        assertEquals("{\"city\": \"Par", cut.arguments());
        assertTrue(cut.error().contains("ended"), cut.error());
    }

    @Test
    void cutOffBeforeSeparator() {
        Out o = feed(TOOL_CALLS_BEGIN + TOOL_CALL_BEGIN + "get_wea", 3);
        assertEquals(1, o.calls().size());
        assertEquals(ToolCall.Status.INCOMPLETE, o.calls().get(0).status());
        assertEquals("get_wea", o.calls().get(0).name());
    }

    @Test
    void plainContentWithAngleBracketsPassesThrough() {
        Out o = feed("if a <b and <｜x then", 1);
        assertEquals("if a <b and <｜x then", o.content());
        assertTrue(o.calls().isEmpty());
    }

    @Test
    void missingSeparatorIsMalformed() {
        Out o = feed(TOOL_CALLS_BEGIN + TOOL_CALL_BEGIN + "nonsense" + TOOL_CALL_END + TOOL_CALLS_END, 1000);
        assertEquals(ToolCall.Status.MALFORMED, o.calls().get(0).status());
        assertTrue(o.calls().get(0).error().contains("no " + TOOL_SEP), o.calls().get(0).error());
    }
}
