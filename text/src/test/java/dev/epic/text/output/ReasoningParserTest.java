package dev.epic.text.output;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;

class ReasoningParserTest {

    /** Feeds the deltas and returns {reasoning, content} of the whole stream, plus the per-delta trace. */
    private static String[] run(ReasoningMode mode, List<String> deltas, StringBuilder trace) {
        ReasoningParser p = new ReasoningParser(mode);
        StringBuilder r = new StringBuilder();
        StringBuilder c = new StringBuilder();
        for (String d : deltas) {
            ReasoningParser.Split s = p.push(d);
            r.append(s.reasoning());
            c.append(s.content());
            if (trace != null) {
                trace.append('[').append(s.reasoning()).append('|').append(s.content()).append(']');
            }
        }
        ReasoningParser.Split s = p.finish();
        r.append(s.reasoning());
        c.append(s.content());
        return new String[] {r.toString(), c.toString()};
    }

    @Test
    void closeTagAsOneToken() {
        // R1 vocabulary: "</think>" is one added token, so it arrives as one delta.
        StringBuilder trace = new StringBuilder();
        String[] out = run(ReasoningMode.OPEN, List.of("Let me", " think.", "\n", "</think>", "\n\n", "Answer: 4"), trace);
        assertEquals("Let me think.\n", out[0]);
        assertEquals("\n\nAnswer: 4", out[1]);
        assertEquals("[Let me|][ think.|][\n|][|][|\n\n][|Answer: 4]", trace.toString());
    }

    @Test
    void closeTagSplitAcrossPlainTokens() {
        // V3 vocabulary: "</think>" is spelled by several tokens; the partial tag is held back.
        StringBuilder trace = new StringBuilder();
        String[] out = run(ReasoningMode.OPEN, List.of("2+2=4 <", "/th", "ink", ">The", " answer"), trace);
        assertEquals("2+2=4 ", out[0]);
        assertEquals("The answer", out[1]);
        assertEquals("[2+2=4 |][|][|][|The][| answer]", trace.toString());
    }

    @Test
    void lessThanThatIsNotATagIsReleased() {
        String[] out = run(ReasoningMode.OPEN, List.of("a <", " b </", "x>", "</think>ok"), null);
        assertEquals("a < b </x>", out[0]);
        assertEquals("ok", out[1]);
    }

    @Test
    void detectModeFindsALeadingThinkBlockEvenWhenSplit() {
        String[] out = run(ReasoningMode.DETECT, List.of("\n<th", "ink>\nhmm", "</think>", "Hi"), null);
        assertEquals("\nhmm", out[0]);
        assertEquals("Hi", out[1]);
    }

    @Test
    void detectModeWithoutThinkIsAllContent() {
        StringBuilder trace = new StringBuilder();
        String[] out = run(ReasoningMode.DETECT, List.of("<", "b>bold</b>"), trace);
        assertEquals("", out[0]);
        assertEquals("<b>bold</b>", out[1]);
        assertEquals("[|][|<b>bold</b>]", trace.toString());
    }

    @Test
    void openModeDropsARedundantLeadingThink() {
        String[] out = run(ReasoningMode.OPEN, List.of("<think>", "\nstep", "</think>", "done"), null);
        assertEquals("\nstep", out[0]);
        assertEquals("done", out[1]);
    }

    @Test
    void unclosedReasoningIsAllReasoningLikeVllm() {
        String[] out = run(ReasoningMode.OPEN, List.of("still thinking </thi"), null);
        assertEquals("still thinking </thi", out[0]);
        assertEquals("", out[1]);
    }

    @Test
    void modeFromRenderedPrompt() {
        assertEquals(ReasoningMode.OPEN, ReasoningMode.forPrompt("<｜User｜>hi<｜Assistant｜><think>\n"));
        assertEquals(ReasoningMode.NONE, ReasoningMode.forPrompt("<｜User｜>hi<｜Assistant｜></think>"));
        assertEquals(ReasoningMode.DETECT, ReasoningMode.forPrompt("<｜User｜>hi<｜Assistant｜>"));
    }

    @Test
    void noneModeLeavesTagsInContent() {
        String[] out = run(ReasoningMode.NONE, List.of("<think>x</think>y"), null);
        assertEquals("", out[0]);
        assertEquals("<think>x</think>y", out[1]);
    }

    @Test
    void thinkTagsInsideContentAreContent() {
        String[] out = run(ReasoningMode.OPEN, List.of("r</think>c <think> d </think>"), null);
        assertEquals("r", out[0]);
        assertEquals("c <think> d </think>", out[1]);
    }
}
