package dev.epic.text.output;

/**
 * Marker texts of DeepSeek V3/R1 output. These are the strings of added tokens (or, for {@code <think>} in the
 * V3 vocabulary, plain text); parsers match text so either tokenization works. Token ids are looked up
 * through {@link dev.epic.text.Vocabulary#addedTokenId}, never hard-coded.
 */
public final class DeepSeekMarkers {
    public static final String EOS = "<｜end▁of▁sentence｜>";
    public static final String THINK_OPEN = "<think>";
    public static final String THINK_CLOSE = "</think>";
    public static final String TOOL_CALLS_BEGIN = "<｜tool▁calls▁begin｜>";
    public static final String TOOL_CALLS_END = "<｜tool▁calls▁end｜>";
    public static final String TOOL_CALL_BEGIN = "<｜tool▁call▁begin｜>";
    public static final String TOOL_CALL_END = "<｜tool▁call▁end｜>";
    public static final String TOOL_SEP = "<｜tool▁sep｜>";

    /** Markers the output parsers must see even when special tokens are skipped. */
    public static final java.util.List<String> PARSED = java.util.List.of(
            THINK_OPEN, THINK_CLOSE, TOOL_CALLS_BEGIN, TOOL_CALLS_END, TOOL_CALL_BEGIN, TOOL_CALL_END, TOOL_SEP);

    /** The markers of a tool-call block. */
    public static final java.util.List<String> TOOL_CALL = java.util.List.of(
            TOOL_CALLS_BEGIN, TOOL_CALLS_END, TOOL_CALL_BEGIN, TOOL_CALL_END, TOOL_SEP);

    private DeepSeekMarkers() {
    }
}
