package dev.epic.text.output;

import dev.epic.text.Vocabulary;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

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
    public static final List<String> PARSED = List.of(
            THINK_OPEN, THINK_CLOSE, TOOL_CALLS_BEGIN, TOOL_CALLS_END, TOOL_CALL_BEGIN, TOOL_CALL_END, TOOL_SEP);

    /** The ids of those of {@code texts} that are added tokens of {@code vocab}. */
    public static Set<Integer> ids(Vocabulary vocab, List<String> texts) {
        Set<Integer> ids = new HashSet<>();
        for (String t : texts) {
            vocab.addedTokenId(t).ifPresent(ids::add);
        }
        return Set.copyOf(ids);
    }

    private DeepSeekMarkers() {
    }
}
