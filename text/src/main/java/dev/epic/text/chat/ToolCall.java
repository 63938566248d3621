package dev.epic.text.chat;

import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;

/**
 * One tool call of an assistant message, in the OpenAI shape: {@code arguments} is a JSON <em>string</em> that
 * templates paste verbatim.
 *
 * @param id optional call id (may be null)
 * @param type usually "function"
 */
public record ToolCall(String id, String type, String name, String arguments) {
    public ToolCall {
        Objects.requireNonNull(type, "type");
        Objects.requireNonNull(name, "name");
        Objects.requireNonNull(arguments, "arguments");
    }

    public static ToolCall function(String name, String argumentsJson) {
        return new ToolCall(null, "function", name, argumentsJson);
    }

    /** {@code {"id"?, "type", "function": {"name", "arguments"}}} as templates index it. */
    Map<String, Object> toTemplateMap() {
        Map<String, Object> function = new LinkedHashMap<>();
        function.put("name", name);
        function.put("arguments", arguments);
        Map<String, Object> m = new LinkedHashMap<>();
        if (id != null) {
            m.put("id", id);
        }
        m.put("type", type);
        m.put("function", function);
        return m;
    }
}
