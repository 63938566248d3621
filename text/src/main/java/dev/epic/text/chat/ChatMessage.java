package dev.epic.text.chat;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.TextException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * One chat message. Roles are free text (system, user, assistant, tool, or anything a template handles; the
 * DeepSeek templates silently skip roles they do not know). {@code content} may be null (an assistant message
 * that only calls tools); {@code toolCalls} null means "no tool calls".
 */
public record ChatMessage(String role, String content, List<ToolCall> toolCalls, String reasoningContent,
                          String name, String toolCallId) {
    public ChatMessage {
        Objects.requireNonNull(role, "role");
        toolCalls = toolCalls == null ? null : List.copyOf(toolCalls);
    }

    public static ChatMessage system(String content) {
        return new ChatMessage("system", content, null, null, null, null);
    }

    public static ChatMessage user(String content) {
        return new ChatMessage("user", content, null, null, null, null);
    }

    public static ChatMessage assistant(String content) {
        return new ChatMessage("assistant", content, null, null, null, null);
    }

    public static ChatMessage assistantToolCalls(String content, List<ToolCall> calls) {
        return new ChatMessage("assistant", content, calls, null, null, null);
    }

    public static ChatMessage tool(String content) {
        return new ChatMessage("tool", content, null, null, null, null);
    }

    /** The dict a Jinja template sees: role and content always, the other keys only when set. */
    Map<String, Object> toTemplateMap() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("role", role);
        m.put("content", content);
        if (toolCalls != null) {
            List<Object> calls = new ArrayList<>(toolCalls.size());
            for (ToolCall c : toolCalls) {
                calls.add(c.toTemplateMap());
            }
            m.put("tool_calls", calls);
        }
        if (reasoningContent != null) {
            m.put("reasoning_content", reasoningContent);
        }
        if (name != null) {
            m.put("name", name);
        }
        if (toolCallId != null) {
            m.put("tool_call_id", toolCallId);
        }
        return m;
    }

    /** Parses a JSON array of OpenAI-style messages; errors name the path, e.g. {@code messages[2].content}. */
    public static List<ChatMessage> listFromJson(JsonNode array, String where) {
        if (array == null || !array.isArray()) {
            throw new TextException(where + " must be an array of messages");
        }
        List<ChatMessage> out = new ArrayList<>(array.size());
        for (int i = 0; i < array.size(); i++) {
            out.add(fromJson(array.get(i), where + "[" + i + "]"));
        }
        return out;
    }

    public static ChatMessage fromJson(JsonNode m, String where) {
        if (m == null || !m.isObject()) {
            throw new TextException(where + " must be an object with \"role\" and \"content\"");
        }
        JsonNode role = m.get("role");
        if (role == null || !role.isTextual() || role.asText().isEmpty()) {
            throw new TextException(where + ".role must be a non-empty string");
        }
        String content = content(m.get("content"), where + ".content");
        List<ToolCall> calls = null;
        JsonNode tc = m.get("tool_calls");
        if (tc != null && !tc.isNull()) {
            if (!tc.isArray()) {
                throw new TextException(where + ".tool_calls must be an array");
            }
            calls = new ArrayList<>();
            for (int j = 0; j < tc.size(); j++) {
                calls.add(toolCall(tc.get(j), where + ".tool_calls[" + j + "]"));
            }
        }
        String reasoning = optionalString(m, "reasoning_content", where);
        if (reasoning == null) {
            reasoning = optionalString(m, "reasoning", where);
        }
        return new ChatMessage(role.asText(), content, calls, reasoning, optionalString(m, "name", where),
                optionalString(m, "tool_call_id", where));
    }

    /** A string, null, or OpenAI text parts [{"type": "text", "text": ...}] (joined with newlines). */
    private static String content(JsonNode c, String where) {
        if (c == null || c.isNull()) {
            return null;
        }
        if (c.isTextual()) {
            return c.asText();
        }
        if (c.isArray()) {
            StringBuilder b = new StringBuilder();
            for (int k = 0; k < c.size(); k++) {
                JsonNode part = c.get(k);
                if (!"text".equals(part.path("type").asText()) || !part.path("text").isTextual()) {
                    throw new TextException(where + "[" + k + "] must be {\"type\": \"text\", \"text\": string}");
                }
                if (k > 0) {
                    b.append('\n');
                }
                b.append(part.get("text").asText());
            }
            return b.toString();
        }
        throw new TextException(where + " must be a string, null, or a list of text parts");
    }

    private static ToolCall toolCall(JsonNode c, String where) {
        JsonNode f = c == null ? null : c.get("function");
        if (f == null || !f.isObject()) {
            throw new TextException(where + " must be {\"type\": \"function\", \"function\": {\"name\", \"arguments\"}}");
        }
        if (!f.path("name").isTextual()) {
            throw new TextException(where + ".function.name must be a string");
        }
        if (!f.path("arguments").isTextual()) {
            throw new TextException(where + ".function.arguments must be a JSON string (the OpenAI shape), got "
                    + f.path("arguments").getNodeType());
        }
        String type = c.path("type").isTextual() ? c.get("type").asText() : "function";
        String id = c.path("id").isTextual() ? c.get("id").asText() : null;
        return new ToolCall(id, type, f.get("name").asText(), f.get("arguments").asText());
    }

    private static String optionalString(JsonNode m, String field, String where) {
        JsonNode n = m.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isTextual()) {
            throw new TextException(where + "." + field + " must be a string");
        }
        return n.asText();
    }
}
