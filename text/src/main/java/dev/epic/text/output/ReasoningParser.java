package dev.epic.text.output;

import java.util.List;

/**
 * Splits streamed text into {@code reasoning_content} (inside {@code <think>...</think>}) and {@code content},
 * like DeepSeek's API and vLLM's deepseek_r1 parser: the tags themselves are dropped, text after
 * {@code </think>} is content verbatim. Works on text deltas, so {@code </think>} may arrive as one added
 * token (R1 vocabulary) or split over several plain-text tokens (V3 vocabulary); a possible partial tag
 * at the end of a delta is held back until it is decided.
 */
public final class ReasoningParser {
    /** One step's output; both parts may be empty. */
    public record Split(String reasoning, String content) {
        public static final Split EMPTY = new Split("", "");

        Split plus(Split o) {
            return new Split(reasoning + o.reasoning, content + o.content);
        }
    }

    private enum State { START, REASONING, CONTENT }

    private static final List<String> CLOSE = List.of(DeepSeekMarkers.THINK_CLOSE);

    private final ReasoningMode mode;
    private final StringBuilder held = new StringBuilder();
    private State state;

    public ReasoningParser(ReasoningMode mode) {
        this.mode = mode;
        this.state = mode == ReasoningMode.NONE ? State.CONTENT : State.START;
    }

    public Split push(String text) {
        if (state == State.CONTENT && held.isEmpty()) {
            return new Split("", text);
        }
        held.append(text);
        Split out = Split.EMPTY;
        while (true) {
            switch (state) {
                case START -> {
                    String buf = held.toString();
                    String body = buf.stripLeading();
                    if (body.startsWith(DeepSeekMarkers.THINK_OPEN)) {
                        held.setLength(0);
                        held.append(body, DeepSeekMarkers.THINK_OPEN.length(), body.length());
                        state = State.REASONING;
                    } else if (DeepSeekMarkers.THINK_OPEN.startsWith(body)) {
                        return out; // still could be "<think>" (or only whitespace so far)
                    } else {
                        state = mode == ReasoningMode.OPEN ? State.REASONING : State.CONTENT;
                    }
                }
                case REASONING -> {
                    String buf = held.toString();
                    int at = buf.indexOf(DeepSeekMarkers.THINK_CLOSE);
                    if (at >= 0) {
                        out = out.plus(new Split(buf.substring(0, at), ""));
                        held.setLength(0);
                        held.append(buf, at + DeepSeekMarkers.THINK_CLOSE.length(), buf.length());
                        state = State.CONTENT;
                    } else {
                        int keep = Partial.heldSuffix(buf, CLOSE);
                        held.delete(0, buf.length() - keep);
                        return out.plus(new Split(buf.substring(0, buf.length() - keep), ""));
                    }
                }
                case CONTENT -> {
                    String rest = held.toString();
                    held.setLength(0);
                    return out.plus(new Split("", rest));
                }
            }
        }
    }

    /** End of stream: held text goes to the channel the parser is in. */
    public Split finish() {
        String rest = held.toString();
        held.setLength(0);
        return switch (state) {
            case START -> mode == ReasoningMode.OPEN ? new Split(rest, "") : new Split("", rest);
            case REASONING -> new Split(rest, "");
            case CONTENT -> new Split("", rest);
        };
    }

    /** True while output is (or, undecided, may still be) reasoning. */
    public boolean inReasoning() {
        return state == State.REASONING;
    }
}
