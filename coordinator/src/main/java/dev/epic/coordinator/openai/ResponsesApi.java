package dev.epic.coordinator.openai;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * OpenAI's Responses API ({@code POST /v1/responses}) over the chat path: a request becomes the chat
 * completion request it means (input items to messages, flat function tools to chat tools,
 * {@code text.format} to {@code response_format}), and the chat answer becomes a {@code response}
 * with reasoning, message and function-call output items; streamed, the chat chunks become the
 * Responses events. Stateless, as vLLM serves it: nothing is stored, so {@code previous_response_id}
 * is refused.
 */
final class ResponsesApi {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    /** Sampling fields passed to the chat request as they are (OpenAI's and vLLM's extras). */
    private static final Set<String> SAMPLING = Set.of("temperature", "top_p", "top_k", "min_p", "seed", "stop",
            "presence_penalty", "frequency_penalty", "repetition_penalty", "logit_bias", "parallel_tool_calls",
            "chat_template_kwargs", "model", "stream", "priority");
    /** Fields that would change the answer and that a stateless server cannot honour. */
    private static final Set<String> REFUSED = Set.of("previous_response_id", "conversation", "background", "prompt");

    private ResponsesApi() {}

    /** The chat completion request a Responses request means. */
    static ObjectNode toChat(JsonNode body) {
        if (!body.isObject()) {
            throw OpenAiError.badRequest(null, "the request body must be a JSON object");
        }
        for (String name : REFUSED) {
            JsonNode v = body.get(name);
            if (v != null && !v.isNull() && !(v.isBoolean() && !v.asBoolean())) {
                throw OpenAiError.badRequest(name, "'" + name + "' is not supported: this server stores no responses");
            }
        }
        ObjectNode chat = NODES.objectNode();
        SAMPLING.forEach(k -> {
            if (body.has(k)) {
                chat.set(k, body.get(k));
            }
        });
        if (body.has("max_output_tokens") && !body.get("max_output_tokens").isNull()) {
            chat.set("max_tokens", body.get("max_output_tokens"));
        }
        ArrayNode messages = chat.putArray("messages");
        JsonNode instructions = body.get("instructions");
        if (instructions != null && !instructions.isNull()) {
            if (!instructions.isTextual()) {
                throw OpenAiError.badRequest("instructions", "'instructions' must be a string");
            }
            messages.addObject().put("role", "system").put("content", instructions.asText());
        }
        // Reasoning effort "none" or "minimal" asks for no thinking block (unless the template switch is set).
        String effort = effort(body);
        if ((effort.equals("none") || effort.equals("minimal")) && !chat.has("chat_template_kwargs")) {
            chat.putObject("chat_template_kwargs").put("enable_thinking", false);
        }
        input(body.get("input"), messages);
        tools(body, chat);
        JsonNode text = body.get("text");
        if (text != null && !text.isNull() && !text.isObject()) {
            throw OpenAiError.badRequest("text", "'text' must be an object");
        }
        format(body.path("text").get("format"), chat);
        return chat;
    }

    /** reasoning.effort, one of OpenAI's values, or "" when not given. */
    private static String effort(JsonNode body) {
        JsonNode reasoning = body.get("reasoning");
        if (reasoning == null || reasoning.isNull()) {
            return "";
        }
        if (!reasoning.isObject()) {
            throw OpenAiError.badRequest("reasoning", "'reasoning' must be an object");
        }
        JsonNode effort = reasoning.get("effort");
        if (effort == null || effort.isNull()) {
            return "";
        }
        if (!effort.isTextual() || !Set.of("none", "minimal", "low", "medium", "high").contains(effort.asText())) {
            throw OpenAiError.badRequest("reasoning.effort", "'reasoning.effort' must be one of none, minimal, low, "
                    + "medium, high, got " + effort);
        }
        return effort.asText();
    }

    /** input: a string (one user message) or a list of message, function_call and function_call_output items. */
    private static void input(JsonNode input, ArrayNode messages) {
        if (input == null || input.isNull()) {
            throw OpenAiError.badRequest("input", "'input' is required");
        }
        if (input.isTextual()) {
            messages.addObject().put("role", "user").put("content", input.asText());
            return;
        }
        if (!input.isArray() || input.isEmpty()) {
            throw OpenAiError.badRequest("input", "'input' must be a string or a non-empty list of items");
        }
        for (int i = 0; i < input.size(); i++) {
            JsonNode item = input.get(i);
            String where = "input[" + i + "]";
            String type = item.path("type").asText(item.has("role") ? "message" : "");
            switch (type) {
                case "message" -> messages.addObject().put("role", item.path("role").asText())
                        .put("content", text(item.get("content"), where + ".content"));
                case "function_call" -> {
                    // Calls in a row are one assistant turn, as the chat API writes them.
                    JsonNode last = messages.isEmpty() ? null : messages.get(messages.size() - 1);
                    ObjectNode turn = last != null && last.path("role").asText().equals("assistant")
                            && (last.has("tool_calls") || last.path("content").asText("").isEmpty())
                            ? (ObjectNode) last : messages.addObject().put("role", "assistant").putNull("content");
                    ArrayNode calls = turn.has("tool_calls") ? (ArrayNode) turn.get("tool_calls") : turn.putArray("tool_calls");
                    ObjectNode call = calls.addObject().put("id", item.path("call_id").asText()).put("type", "function");
                    call.putObject("function").put("name", item.path("name").asText())
                            .put("arguments", item.path("arguments").asText("{}"));
                }
                case "function_call_output" -> messages.addObject().put("role", "tool")
                        .put("tool_call_id", item.path("call_id").asText())
                        .put("content", text(item.get("output"), where + ".output"));
                case "reasoning" -> { } // earlier thinking: DeepSeek's templates drop it from the history anyway
                default -> throw OpenAiError.badRequest(where, "input items of type '" + type + "' are not supported");
            }
        }
    }

    /** A message's content: a string, or text parts (input_text, output_text) joined. */
    private static String text(JsonNode content, String where) {
        if (content == null || content.isNull()) {
            return "";
        }
        if (content.isTextual()) {
            return content.asText();
        }
        if (!content.isArray()) {
            throw OpenAiError.badRequest(where, "content must be a string or a list of text parts");
        }
        // Joined by newlines, as the chat API (and vLLM) join a message's text parts.
        java.util.StringJoiner b = new java.util.StringJoiner("\n");
        for (JsonNode part : content) {
            String t = part.path("type").asText();
            if (!Set.of("input_text", "output_text", "text").contains(t)) {
                throw OpenAiError.badRequest(where, "content parts of type '" + t + "' are not supported");
            }
            b.add(part.path("text").asText());
        }
        return b.toString();
    }

    /** Flat function tools and tool_choice, in the chat API's nesting. */
    private static void tools(JsonNode body, ObjectNode chat) {
        JsonNode tools = body.get("tools");
        if (tools != null && !tools.isNull()) {
            if (!tools.isArray()) {
                throw OpenAiError.badRequest("tools", "'tools' must be a list");
            }
            ArrayNode out = chat.putArray("tools");
            for (JsonNode t : tools) {
                if (!t.path("type").asText().equals("function")) {
                    throw OpenAiError.badRequest("tools", "tools of type '" + t.path("type").asText()
                            + "' are not supported (function tools are)");
                }
                ObjectNode f = out.addObject().put("type", "function").putObject("function");
                for (String k : new String[] {"name", "description", "parameters"}) {
                    if (t.has(k)) {
                        f.set(k, t.get(k));
                    }
                }
            }
        }
        JsonNode choice = body.get("tool_choice");
        if (choice != null && !choice.isNull()) {
            if (choice.isObject() && choice.path("type").asText().equals("function")) {
                if (!choice.path("name").isTextual()) {
                    throw OpenAiError.badRequest("tool_choice", "tool_choice of type function needs a 'name'");
                }
                chat.putObject("tool_choice").put("type", "function").putObject("function")
                        .put("name", choice.path("name").asText());
            } else if (choice.isObject()) {
                throw OpenAiError.badRequest("tool_choice", "tool_choice of type '" + choice.path("type").asText()
                        + "' is not supported (function tools are)");
            } else {
                chat.set("tool_choice", choice);
            }
        }
    }

    /** text.format: text, json_object, or json_schema with its name and schema flat. */
    private static void format(JsonNode format, ObjectNode chat) {
        if (format == null || format.isNull()) {
            return;
        }
        String type = format.path("type").asText();
        switch (type) {
            case "text" -> { }
            case "json_object" -> chat.putObject("response_format").put("type", "json_object");
            case "json_schema" -> {
                ObjectNode schema = chat.putObject("response_format").put("type", "json_schema").putObject("json_schema");
                for (String k : new String[] {"name", "schema", "strict", "description"}) {
                    if (format.has(k)) {
                        schema.set(k, format.get(k));
                    }
                }
            }
            default -> throw OpenAiError.badRequest("text.format", "text.format '" + type + "' is not supported");
        }
    }

    /** The response object for a finished chat completion (status from its finish reason). */
    static ObjectNode response(JsonNode request, JsonNode completion) {
        JsonNode choice = completion.path("choices").path(0);
        JsonNode message = choice.path("message");
        ObjectNode r = envelope(request, completion.path("id").asText(), completion.path("created").asLong(),
                completion.path("model").asText());
        boolean cut = choice.path("finish_reason").asText().equals("length");
        r.put("status", cut ? "incomplete" : "completed");
        if (cut) {
            r.putObject("incomplete_details").put("reason", "max_output_tokens");
        }
        ArrayNode output = r.putArray("output");
        String id = r.get("id").asText();
        if (!message.path("reasoning_content").asText("").isEmpty()) {
            output.add(reasoning(id, message.get("reasoning_content").asText()));
        }
        if (!message.path("content").asText("").isEmpty()) {
            output.add(message(id, message.get("content").asText(), cut ? "incomplete" : "completed"));
        }
        for (JsonNode call : message.path("tool_calls")) {
            output.add(functionCall(call, "completed"));
        }
        r.set("usage", usage(completion.path("usage")));
        return r;
    }

    /** What every response object carries: ids, the request's settings, and no error. */
    private static ObjectNode envelope(JsonNode request, String chatId, long created, String model) {
        ObjectNode r = NODES.objectNode().put("id", "resp_" + chatId.replaceFirst("^chatcmpl-", ""))
                .put("object", "response").put("created_at", created).put("model", model).put("status", "in_progress");
        r.putNull("error");
        r.putNull("incomplete_details");
        r.set("instructions", request.path("instructions").isMissingNode() ? NODES.nullNode() : request.get("instructions"));
        r.set("max_output_tokens", request.has("max_output_tokens") ? request.get("max_output_tokens") : NODES.nullNode());
        r.putArray("output");
        r.put("parallel_tool_calls", request.path("parallel_tool_calls").asBoolean(true));
        r.putNull("previous_response_id");
        r.putObject("reasoning").putNull("effort").putNull("summary");
        r.put("store", false);
        r.set("temperature", request.has("temperature") ? request.get("temperature") : NODES.nullNode());
        ObjectNode text = r.putObject("text");
        text.set("format", request.path("text").has("format") ? request.path("text").get("format")
                : NODES.objectNode().put("type", "text"));
        r.set("tool_choice", request.has("tool_choice") ? request.get("tool_choice") : NODES.textNode("auto"));
        r.set("tools", request.has("tools") ? request.get("tools") : NODES.arrayNode());
        r.set("top_p", request.has("top_p") ? request.get("top_p") : NODES.nullNode());
        r.put("truncation", "disabled");
        r.putObject("metadata");
        r.putNull("usage");
        return r;
    }

    private static ObjectNode reasoning(String responseId, String text) {
        ObjectNode item = NODES.objectNode().put("type", "reasoning").put("id", "rs_" + responseId.substring(5));
        item.putArray("summary");
        item.putArray("content").addObject().put("type", "reasoning_text").put("text", text);
        return item;
    }

    private static ObjectNode message(String responseId, String text, String status) {
        ObjectNode item = NODES.objectNode().put("type", "message").put("id", "msg_" + responseId.substring(5))
                .put("status", status).put("role", "assistant");
        item.putArray("content").add(outputText(text));
        return item;
    }

    private static ObjectNode outputText(String text) {
        ObjectNode part = NODES.objectNode().put("type", "output_text").put("text", text);
        part.putArray("annotations");
        part.putArray("logprobs");
        return part;
    }

    private static ObjectNode functionCall(JsonNode chatCall, String status) {
        String callId = chatCall.path("id").asText();
        return NODES.objectNode().put("type", "function_call").put("id", "fc_" + callId.replaceFirst("^call_", ""))
                .put("call_id", callId).put("name", chatCall.path("function").path("name").asText())
                .put("arguments", chatCall.path("function").path("arguments").asText()).put("status", status);
    }

    private static ObjectNode usage(JsonNode u) {
        ObjectNode o = NODES.objectNode().put("input_tokens", u.path("prompt_tokens").asInt());
        o.putObject("input_tokens_details").put("cached_tokens", u.path("prompt_tokens_details").path("cached_tokens").asInt());
        o.put("output_tokens", u.path("completion_tokens").asInt());
        o.putObject("output_tokens_details").put("reasoning_tokens",
                u.path("completion_tokens_details").path("reasoning_tokens").asInt());
        o.put("total_tokens", u.path("total_tokens").asInt());
        return o;
    }

    /**
     * The Responses stream of one chat stream: feed it the chat chunks in order, then the finished
     * completion; each call returns the events to send (each with its type and sequence number).
     * Output items open as their first delta comes (reasoning, then the message, then function calls)
     * and close when the next kind starts or the answer ends.
     */
    static final class Events {
        private final JsonNode request;
        private ObjectNode shell;
        private String responseId;
        private int sequence;
        private int outputIndex = -1;
        /** The open item: "reasoning" or "message" (function calls come whole), and its text so far. */
        private String open;
        private final StringBuilder text = new StringBuilder();

        Events(JsonNode request) {
            this.request = request;
        }

        List<ObjectNode> chunk(JsonNode chunk) {
            List<ObjectNode> out = new ArrayList<>();
            if (shell == null) {
                shell = envelope(request, chunk.path("id").asText(), chunk.path("created").asLong(), chunk.path("model").asText());
                responseId = shell.get("id").asText();
                out.add(event("response.created").set("response", shell.deepCopy()));
                out.add(event("response.in_progress").set("response", shell.deepCopy()));
            }
            JsonNode delta = chunk.path("choices").path(0).path("delta");
            String reasoning = delta.path("reasoning_content").asText("");
            if (!reasoning.isEmpty()) {
                if (!"reasoning".equals(open)) {
                    close(out);
                    ObjectNode item = reasoning(responseId, "");
                    item.putArray("content");
                    open(out, "reasoning", item);
                }
                text.append(reasoning);
                out.add(delta("response.reasoning_text.delta", reasoning));
            }
            String content = delta.path("content").asText("");
            if (!content.isEmpty()) {
                if (!"message".equals(open)) {
                    close(out);
                    ObjectNode item = message(responseId, "", "in_progress");
                    item.putArray("content");
                    open(out, "message", item);
                    out.add(itemEvent("response.content_part.added").put("content_index", 0).set("part", outputText("")));
                }
                text.append(content);
                ObjectNode d = delta("response.output_text.delta", content);
                d.putArray("logprobs");
                out.add(d);
            }
            for (JsonNode call : delta.path("tool_calls")) {
                close(out);
                ObjectNode item = functionCall(call, "in_progress").put("arguments", "");
                open(out, "function_call", item);
                String args = call.path("function").path("arguments").asText();
                out.add(itemEvent("response.function_call_arguments.delta").put("delta", args));
                out.add(itemEvent("response.function_call_arguments.done").put("arguments", args));
                out.add(event("response.output_item.done").put("output_index", outputIndex)
                        .set("item", functionCall(call, "completed")));
                open = null;
            }
            return out;
        }

        /** The closing events: open items done, then response.completed (or .incomplete) with the whole response. */
        List<ObjectNode> finish(JsonNode completion) {
            ObjectNode whole = response(request, completion);
            String status = whole.get("status").asText();
            List<ObjectNode> out = new ArrayList<>();
            close(out, status);
            out.add(event(status.equals("completed") ? "response.completed" : "response.incomplete").set("response", whole));
            return out;
        }

        /** A failure mid-stream: the error event, then response.failed with what was written so far. */
        List<ObjectNode> fail(String code, String message) {
            List<ObjectNode> out = new ArrayList<>();
            out.add(event("error").put("code", code).put("message", message).putNull("param"));
            if (shell != null) {
                ObjectNode failed = shell.deepCopy().put("status", "failed");
                failed.putObject("error").put("code", code).put("message", message);
                out.add(event("response.failed").set("response", failed));
            }
            return out;
        }

        private JsonNode currentItem;

        private void open(List<ObjectNode> out, String kind, ObjectNode item) {
            outputIndex++;
            open = kind;
            currentItem = item;
            text.setLength(0);
            out.add(event("response.output_item.added").put("output_index", outputIndex).set("item", item));
        }

        private void close(List<ObjectNode> out) {
            close(out, "completed");
        }

        private void close(List<ObjectNode> out, String status) {
            if (open == null) {
                return;
            }
            if (open.equals("reasoning")) {
                out.add(itemEvent("response.reasoning_text.done").put("content_index", 0).put("text", text.toString()));
                out.add(event("response.output_item.done").put("output_index", outputIndex)
                        .set("item", reasoning(responseId, text.toString())));
            } else if (open.equals("message")) {
                ObjectNode done = itemEvent("response.output_text.done").put("content_index", 0).put("text", text.toString());
                done.putArray("logprobs");
                out.add(done);
                out.add(itemEvent("response.content_part.done").put("content_index", 0).set("part", outputText(text.toString())));
                out.add(event("response.output_item.done").put("output_index", outputIndex)
                        .set("item", message(responseId, text.toString(), status)));
            }
            open = null;
        }

        private ObjectNode delta(String type, String delta) {
            return itemEvent(type).put("content_index", 0).put("delta", delta);
        }

        private ObjectNode itemEvent(String type) {
            return event(type).put("item_id", currentItem.path("id").asText()).put("output_index", outputIndex);
        }

        private ObjectNode event(String type) {
            return NODES.objectNode().put("type", type).put("sequence_number", sequence++);
        }
    }
}
