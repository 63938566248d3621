package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * What a forced tool choice lets the model write: DeepSeek V3/R1 tool calls, in the layout their
 * chat templates use for an assistant's calls,
 * <pre>
 * &lt;｜tool▁calls▁begin｜&gt;&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\nARGS\n```&lt;｜tool▁call▁end｜&gt;
 *   (\n&lt;｜tool▁call▁begin｜&gt; ... &lt;｜tool▁call▁end｜&gt;)*  &lt;｜tool▁calls▁end｜&gt;
 * </pre>
 * where NAME is one of the tools and ARGS a JSON value matching that tool's parameter schema. The
 * markers are single tokens ({@link ToolCallConstraint} forces them); the text between them is
 * walked byte by byte by a {@link CallCursor}. Compiled grammars are shared by requests with the
 * same tools, and so are their token masks.
 */
public final class ToolCallGrammar {
    /**
     * One tool the model may call: its name and the JSON schema of its arguments, as text (compiled
     * by the grammar, so equal tool lists find the same grammar and its masks).
     */
    public record Tool(String name, String parameters) {
        public Tool {
            if (name == null || name.isEmpty() || name.chars().anyMatch(c -> c == '\n' || c == '<')) {
                throw new IllegalArgumentException("tool name must be non-empty, without newlines or '<': " + name);
            }
        }
    }

    static final byte[] TYPE = "function".getBytes(StandardCharsets.UTF_8);
    static final byte[] TAIL = "\n```".getBytes(StandardCharsets.UTF_8);
    static final byte[] BETWEEN = "\n".getBytes(StandardCharsets.UTF_8);
    private static final byte[] HEAD_END = "\n```json\n".getBytes(StandardCharsets.UTF_8);

    private static final Map<List<Object>, ToolCallGrammar> COMPILED = Collections.synchronizedMap(
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<List<Object>, ToolCallGrammar> e) {
                    return size() > 16;
                }
            });

    /** The tools' names, in order, and their compiled parameter schemas. */
    final List<String> names;
    final List<JsonSchema> schemas;
    /** heads[t]: tool t's name and the code fence that opens its arguments. */
    final byte[][] heads;
    final boolean parallel;
    private final Map<Vocabulary, TokenMask<CallCursor>> masks = Collections.synchronizedMap(new WeakHashMap<>());

    private ToolCallGrammar(List<Tool> tools, boolean parallel) {
        this.parallel = parallel;
        this.names = tools.stream().map(Tool::name).toList();
        List<JsonSchema> compiled = new ArrayList<>();
        for (Tool t : tools) {
            try {
                compiled.add(JsonSchema.compile(t.parameters()));
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException("tool " + t.name() + " parameters: " + e.getMessage(), e);
            }
        }
        this.schemas = List.copyOf(compiled);
        this.heads = new byte[tools.size()][];
        for (int t = 0; t < heads.length; t++) {
            byte[] name = names.get(t).getBytes(StandardCharsets.UTF_8);
            heads[t] = new byte[name.length + HEAD_END.length];
            System.arraycopy(name, 0, heads[t], 0, name.length);
            System.arraycopy(HEAD_END, 0, heads[t], name.length, HEAD_END.length);
        }
    }

    /**
     * Calls to any of {@code tools} ({@code tool_choice: "required"}, or a named function with one
     * tool): one call, or with {@code parallel} one or more.
     *
     * @throws IllegalArgumentException for no tools, two of one name, or a schema {@link JsonSchema}
     *                                  cannot honour (naming the tool)
     */
    public static ToolCallGrammar of(List<Tool> tools, boolean parallel) {
        if (tools.isEmpty()) {
            throw new IllegalArgumentException("a forced tool choice needs at least one tool");
        }
        java.util.Set<String> seen = new java.util.HashSet<>();
        for (Tool t : tools) {
            if (!seen.add(t.name())) {
                throw new IllegalArgumentException("two tools are named " + t.name());
            }
        }
        return COMPILED.computeIfAbsent(List.of(List.copyOf(tools), parallel), k -> new ToolCallGrammar(tools, parallel));
    }

    TokenMask<CallCursor> mask(Vocabulary vocab) {
        return masks.computeIfAbsent(vocab, v -> new TokenMask<>(v, 512));
    }
}
