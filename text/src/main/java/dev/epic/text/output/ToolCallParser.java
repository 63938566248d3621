package dev.epic.text.output;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.util.ArrayList;
import java.util.List;
import java.util.UUID;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALLS_BEGIN;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALLS_END;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALL_BEGIN;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_CALL_END;
import static dev.epic.text.output.DeepSeekMarkers.TOOL_SEP;

/**
 * Streams DeepSeek tool-call blocks out of content text. Two call layouts are understood:
 * <pre>
 * V3 / R1 / R1-0528: &lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\nARGS\n```&lt;｜tool▁call▁end｜&gt;
 * V3.1:              &lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;ARGS&lt;｜tool▁call▁end｜&gt;
 * </pre>
 * inside {@code <｜tool▁calls▁begin｜> ... <｜tool▁calls▁end｜>} (calls optionally separated by newlines).
 * Text before the block is content; each call is reported when its end marker arrives. Arguments are
 * checked with Jackson: invalid JSON is reported on that call (status MALFORMED), and a call still open
 * when the stream ends is reported as INCOMPLETE.
 */
public final class ToolCallParser {
    private static final Logger log = LoggerFactory.getLogger(ToolCallParser.class);
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final List<String> CONTENT_MARKERS = List.of(TOOL_CALLS_BEGIN, TOOL_CALL_BEGIN);
    private static final List<String> BLOCK_MARKERS = List.of(TOOL_CALL_BEGIN, TOOL_CALLS_END);
    private static final List<String> HEAD_MARKERS = List.of(TOOL_SEP, TOOL_CALL_END);
    private static final List<String> BODY_MARKERS = List.of(TOOL_CALL_END);

    /** One step's output. */
    public record Result(String content, List<ToolCall> calls) {
        public static final Result EMPTY = new Result("", List.of());

        Result plus(Result o) {
            if (o.calls.isEmpty() && o.content.isEmpty()) {
                return this;
            }
            List<ToolCall> all = new ArrayList<>(calls);
            all.addAll(o.calls);
            return new Result(content + o.content, List.copyOf(all));
        }
    }

    private enum State { CONTENT, BLOCK, HEAD, BODY, AFTER }

    private final Supplier<String> ids;
    private final StringBuilder held = new StringBuilder();
    private static final int LONGEST_MARKER = Math.max(TOOL_CALLS_BEGIN.length(), TOOL_CALLS_END.length());

    private State state = State.CONTENT;
    private int scanFrom; // in HEAD / BODY: where in the held text a marker could still start
    private String head;
    private int nextIndex;

    /** Call ids {@code call_} + 24 random hex digits. */
    public ToolCallParser() {
        this(() -> "call_" + UUID.randomUUID().toString().replace("-", "").substring(0, 24));
    }

    public ToolCallParser(Supplier<String> ids) {
        this.ids = ids;
    }

    public Result push(String text) {
        if (state == State.CONTENT && held.isEmpty() && text.indexOf('<') < 0 || state == State.AFTER) {
            return new Result(text, List.of());
        }
        held.append(text);
        String content = "";
        List<ToolCall> calls = new ArrayList<>(0);
        while (true) {
            String buf = held.toString();
            List<String> markers = switch (state) {
                case CONTENT -> CONTENT_MARKERS;
                case BLOCK -> BLOCK_MARKERS;
                case HEAD -> HEAD_MARKERS;
                case BODY -> BODY_MARKERS;
                case AFTER -> List.of();
            };
            if (state == State.AFTER) {
                held.setLength(0);
                content += buf;
                break;
            }
            int[] hit = Partial.earliest(buf, scanFrom, markers);
            if (hit == null) {
                if (state == State.CONTENT) {
                    int keep = Partial.heldSuffix(buf, markers);
                    content += buf.substring(0, buf.length() - keep);
                    held.delete(0, buf.length() - keep);
                    scanFrom = 0; // what is held now is only a marker's possible start
                } else if (state == State.BLOCK) {
                    int keep = Partial.heldSuffix(buf, markers);
                    discard(buf.substring(0, buf.length() - keep));
                    held.delete(0, buf.length() - keep);
                    scanFrom = 0;
                } else {
                    // HEAD / BODY keep accumulating; a marker can only end in text not yet scanned
                    scanFrom = Math.max(0, buf.length() - LONGEST_MARKER + 1);
                }
                break;
            }
            scanFrom = 0;
            String before = buf.substring(0, hit[0]);
            String marker = markers.get(hit[1]);
            held.delete(0, hit[0] + marker.length());
            switch (state) {
                case CONTENT -> {
                    content += before;
                    state = marker.equals(TOOL_CALLS_BEGIN) ? State.BLOCK : State.HEAD;
                }
                case BLOCK -> {
                    discard(before);
                    state = marker.equals(TOOL_CALL_BEGIN) ? State.HEAD : State.AFTER;
                }
                case HEAD -> {
                    if (marker.equals(TOOL_SEP)) {
                        head = before;
                        state = State.BODY;
                    } else {
                        calls.add(new ToolCall(nextIndex++, ids.get(), "", before.strip(), ToolCall.Status.MALFORMED,
                                "tool call has no " + TOOL_SEP + " between name and arguments"));
                        state = State.BLOCK;
                    }
                }
                case BODY -> {
                    calls.add(complete(head, before));
                    head = null;
                    state = State.BLOCK;
                }
                case AFTER -> throw new AssertionError();
            }
        }
        return new Result(content, calls.isEmpty() ? List.of() : List.copyOf(calls));
    }

    /** End of stream: releases held content, and reports a call left open as INCOMPLETE. */
    public Result finish() {
        String rest = held.toString();
        held.setLength(0);
        Result r = switch (state) {
            case CONTENT, AFTER -> new Result(rest, List.of());
            case BLOCK -> Result.EMPTY;
            case HEAD -> {
                String name = rest.strip().equals("function") ? "" : rest.strip(); // V3.1 puts the name here
                yield new Result("", List.of(new ToolCall(nextIndex++, ids.get(), name, "",
                        ToolCall.Status.INCOMPLETE, "output ended inside a tool call, before its arguments")));
            }
            case BODY -> {
                Parsed p = split(head, rest);
                yield new Result("", List.of(new ToolCall(nextIndex++, ids.get(), p.name, p.arguments,
                        ToolCall.Status.INCOMPLETE, "output ended inside the arguments of tool call '" + p.name + "'")));
            }
        };
        state = State.AFTER;
        return r;
    }

    /** True once a tool-call block or call has started. */
    public boolean sawToolCalls() {
        return nextIndex > 0 || state == State.BLOCK || state == State.HEAD || state == State.BODY;
    }

    private record Parsed(String name, String arguments) {
    }

    /** Separates name and arguments for both layouts (see class comment). */
    private static Parsed split(String head, String body) {
        if (head.strip().equals("function")) {
            int nl = body.indexOf('\n');
            String name = (nl < 0 ? body : body.substring(0, nl)).strip();
            String args = nl < 0 ? "" : body.substring(nl + 1).strip();
            if (args.startsWith("```json")) {
                args = args.substring("```json".length());
            } else if (args.startsWith("```")) {
                args = args.substring(3);
            }
            if (args.endsWith("```")) {
                args = args.substring(0, args.length() - 3);
            }
            return new Parsed(name, args.strip());
        }
        return new Parsed(head.strip(), body.strip());
    }

    private ToolCall complete(String head, String body) {
        Parsed p = split(head, body);
        String id = ids.get();
        int index = nextIndex++;
        if (p.name.isEmpty()) {
            return new ToolCall(index, id, p.name, p.arguments, ToolCall.Status.MALFORMED, "tool call has an empty function name");
        }
        try {
            JsonNode node = JSON.readTree(p.arguments);
            if (node == null || node.isMissingNode()) {
                return new ToolCall(index, id, p.name, p.arguments, ToolCall.Status.MALFORMED,
                        "arguments of tool call '" + p.name + "' are empty; expected a JSON object");
            }
            if (!node.isObject()) {
                return new ToolCall(index, id, p.name, p.arguments, ToolCall.Status.MALFORMED,
                        "arguments of tool call '" + p.name + "' must be a JSON object, got " + node.getNodeType());
            }
            return new ToolCall(index, id, p.name, p.arguments, ToolCall.Status.COMPLETE, null);
        } catch (JsonProcessingException e) {
            return new ToolCall(index, id, p.name, p.arguments, ToolCall.Status.MALFORMED,
                    "arguments of tool call '" + p.name + "' are not valid JSON: " + e.getOriginalMessage());
        }
    }

    private static void discard(String between) {
        if (!between.isBlank()) {
            log.debug("ignoring text between tool calls: {}", between);
        }
    }
}
