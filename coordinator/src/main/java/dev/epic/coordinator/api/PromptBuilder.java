package dev.epic.coordinator.api;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.coordinator.ServedModel;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.Tool;
import dev.epic.proto.ToolCall;
import dev.epic.text.TextException;
import dev.epic.text.output.DeepSeekMarkers;
import dev.epic.text.output.ReasoningMode;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Turns the prompt part of an API request into token ids: chat messages through the model's chat
 * template, raw text through the tokenizer, or ids as given. Every problem is INVALID_ARGUMENT naming
 * the field.
 */
final class PromptBuilder {
    static final Set<String> ROLES = Set.of("system", "user", "assistant", "tool");
    /** What DeepSeek templates put after the assistant tag to skip thinking. */
    private static final String EMPTY_THINK = "<think>\n\n</think>\n\n";

    /** What a chat prompt does about the model's thinking block. */
    enum Thinking {
        /** As the template renders it. */
        AS_TEMPLATE,
        /** Skipped (enable_thinking false): an empty block, or the one the template opened closed at once. */
        SKIP,
        /** Skipped unless the template opened the block itself (a constrained answer's default: it then thinks first). */
        SKIP_UNLESS_OPENED
    }
    private static final ObjectMapper JSON = new ObjectMapper();

    private final ServedModel model;
    /** The model's chat template: what a request without its own renders with. */
    private final Template modelTemplate;
    /** Requests' own templates, compiled once per text (the few a client sends again and again). */
    private final Map<String, Template> requestTemplates = java.util.Collections.synchronizedMap(
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, Template> e) {
                    return size() > 16;
                }
            });

    /**
     * A chat template and what it does: whether it reads the request's tool definitions itself, and
     * whether it knows thinking blocks (handles {@code </think>}, as R1's: a reasoning model's).
     */
    record Template(dev.epic.text.chat.ChatTemplate chat, boolean rendersTools, boolean reasoning) {
        static Template of(dev.epic.text.chat.ChatTemplate t) {
            return new Template(t, TOOLS_VARIABLE.matcher(t.template()).find(), t.template().contains(DeepSeekMarkers.THINK_CLOSE));
        }
    }

    PromptBuilder(ServedModel model) {
        this.model = model;
        this.modelTemplate = Template.of(model.chatTemplate());
    }

    boolean reasoningTemplate() {
        return modelTemplate.reasoning();
    }

    /**
     * The template a chat request renders with: the model's, or its own {@code chat_template} (vLLM's),
     * which only a coordinator started with --trust-request-chat-template takes.
     */
    Template template(String requestTemplate) {
        if (requestTemplate.isEmpty()) {
            return modelTemplate;
        }
        if (!model.trustRequestChatTemplate()) {
            throw FieldViolation.invalid("chat_template", "chat_template: this coordinator renders with the model's "
                    + "template; a request's own is taken only when it is started with --trust-request-chat-template "
                    + "(a template is code the operator did not write; vLLM refuses it too)");
        }
        Template known = requestTemplates.get(requestTemplate);
        if (known == null) {
            try {
                known = Template.of(dev.epic.text.chat.ChatTemplate.of(requestTemplate, "the request's chat_template",
                        model.tokenizer().config()));
            } catch (TextException e) {
                throw FieldViolation.invalid("chat_template", "chat_template: " + e.getMessage());
            }
            requestTemplates.put(requestTemplate, known);
        }
        return known;
    }

    /**
     * The rendered prompt text of a conversation; with the generation prompt, {@code thinking} says
     * what happens to the thinking block (see {@link #withThinking}).
     */
    String render(List<ChatMessage> messages, List<Tool> tools, boolean addGenerationPrompt, Thinking thinking) {
        return render(modelTemplate, Map.of(), messages, tools, addGenerationPrompt, false, thinking);
    }

    /** As below, with the model's template. */
    String render(List<ChatMessage> messages, List<Tool> tools, boolean addGenerationPrompt, boolean continueFinal,
            Thinking thinking) {
        return render(modelTemplate, Map.of(), messages, tools, addGenerationPrompt, continueFinal, thinking);
    }

    /**
     * A request's chat_template_kwargs (a JSON object, or empty for none) as template variables; INVALID_ARGUMENT
     * naming the field when it is not an object.
     */
    static Map<String, Object> templateVariables(String json) {
        if (json.isEmpty()) {
            return Map.of();
        }
        try {
            Object v = JSON.readValue(json, Object.class);
            if (v instanceof Map<?, ?> m) {
                @SuppressWarnings("unchecked")
                Map<String, Object> vars = (Map<String, Object>) m;
                return vars;
            }
        } catch (JsonProcessingException e) {
            // reported below
        }
        throw FieldViolation.invalid("chat_template_kwargs", "chat_template_kwargs must be a JSON object, got " + json);
    }

    /**
     * The prompt text of a conversation rendered with {@code template}; with {@code continueFinal} (and no
     * generation prompt) the text is cut right after the last message's content, so the model continues
     * that message ({@link #continued}).
     */
    String render(Template template, Map<String, Object> variables, List<ChatMessage> messages, List<Tool> tools,
            boolean addGenerationPrompt, boolean continueFinal, Thinking thinking) {
        if (continueFinal && addGenerationPrompt) {
            throw FieldViolation.invalid("continue_final_message", "continue_final_message continues the last message, "
                    + "so it needs add_generation_prompt false (vLLM refuses both true too)");
        }
        if (messages.isEmpty()) {
            throw invalid("chat.messages is empty: a chat prompt needs at least one message");
        }
        List<dev.epic.text.chat.ChatMessage> msgs = new ArrayList<>(messages.size());
        for (int i = 0; i < messages.size(); i++) {
            msgs.add(message(messages.get(i), "chat.messages[" + i + "]"));
        }
        List<Object> toolMaps = tools.isEmpty() ? null : toolMaps(tools);
        if (toolMaps != null && !template.rendersTools()) {
            msgs = withToolsSection(msgs, toolMaps);
        }
        try {
            String text = template.chat().render(msgs, toolMaps, addGenerationPrompt, variables);
            if (continueFinal) {
                return continued(text, messages.getLast().getContent(), "chat.messages[" + (messages.size() - 1) + "]");
            }
            return addGenerationPrompt ? withThinking(text, thinking, template.reasoning()) : text;
        } catch (TextException e) {
            throw invalid(e.getMessage());
        }
    }

    /**
     * A rendered generation prompt with thinking skipped as asked. Only a reasoning template gets a
     * block: V3's has none, and vLLM ignores the switch without a reasoning parser. After the assistant
     * tag goes an empty block; a block the template opened (R1's January template ends in
     * {@code <think>\n}) is closed when thinking is turned off, and otherwise left for the answer to think in.
     */
    static String withThinking(String rendered, Thinking thinking, boolean reasoningTemplate) {
        if (thinking == Thinking.AS_TEMPLATE || !reasoningTemplate) {
            return rendered;
        }
        return switch (ReasoningMode.forPrompt(rendered)) {
            case NONE -> rendered; // the template closed the block already
            case DETECT -> rendered + EMPTY_THINK;
            case OPEN -> thinking == Thinking.SKIP
                    ? rendered.stripTrailing() + EMPTY_THINK.substring(DeepSeekMarkers.THINK_OPEN.length())
                    : rendered;
        };
    }

    /**
     * A rendered conversation cut right after its last message's text, so that the model continues
     * that message: Hugging Face's {@code continue_final_message}, which vLLM uses. The text is found at
     * its last occurrence, stripped (templates often trim it); the cut keeps its trailing spaces where
     * the template kept the message whole. A template that changed the text
     * (R1's drops what comes before a {@code </think>}) leaves nothing to continue: INVALID_ARGUMENT.
     */
    static String continued(String rendered, String finalContent, String field) {
        String stripped = finalContent.strip();
        if (stripped.isEmpty()) {
            throw FieldViolation.invalid(field, field + " has no text to continue (continue_final_message)");
        }
        int at = rendered.lastIndexOf(stripped);
        if (at < 0) {
            throw FieldViolation.invalid(field, field + "'s text does not appear in the prompt the chat template "
                    + "renders (the template changes it), so it cannot be continued (continue_final_message)");
        }
        // Trailing spaces stay only where the message has no leading ones and the template kept it whole
        // (Hugging Face compares the rendered span with the message as sent).
        boolean whole = rendered.startsWith(finalContent, at);
        return rendered.substring(0, at + (whole ? finalContent.length() : stripped.length()));
    }

    /** The chat template writes BOS itself; raw text gets it when the client asks (add_special_tokens). */
    int[] encode(String text, boolean bos, String field) {
        try {
            return bos ? model.tokenizer().encodeWithBos(text) : model.tokenizer().encode(text);
        } catch (TextException e) {
            throw invalid(field + ": " + e.getMessage());
        }
    }

    /** DeepSeek's fill-in-the-middle tokens (DeepSeek-V3's tokenizer: 128801, 128800, 128802). */
    private static final String FIM_BEGIN = "<｜fim▁begin｜>";
    private static final String FIM_HOLE = "<｜fim▁hole｜>";
    private static final String FIM_END = "<｜fim▁end｜>";

    /**
     * A fill-in-the-middle prompt as DeepSeek-V3 was trained on them (prefix-suffix-middle):
     * [BOS] <｜fim▁begin｜> prefix <｜fim▁hole｜> suffix <｜fim▁end｜>; the model writes the middle. Each
     * text is tokenized on its own, as the whole would be (special tokens split a text first).
     */
    int[] fillInTheMiddle(String prefix, String suffix, boolean bos) {
        int[] head = encode(prefix, bos, "text"); // with BOS first when asked for
        int[] tail = encode(suffix, false, "suffix");
        int lead = bos ? 1 : 0;
        int[] ids = new int[head.length + tail.length + 3];
        System.arraycopy(head, 0, ids, 0, lead);
        ids[lead] = fimToken(FIM_BEGIN);
        System.arraycopy(head, lead, ids, lead + 1, head.length - lead);
        ids[head.length + 1] = fimToken(FIM_HOLE);
        System.arraycopy(tail, 0, ids, head.length + 2, tail.length);
        ids[ids.length - 1] = fimToken(FIM_END);
        return ids;
    }

    private int fimToken(String token) {
        return model.tokenizer().addedTokenId(token).orElseThrow(() -> FieldViolation.invalid("suffix",
                "this model's tokenizer has no " + token + " token: fill in the middle (suffix) needs DeepSeek's FIM tokens"));
    }

    /** Every id must fit the model too (a tokenizer may be larger than the lm_head). */
    int[] fitModel(int[] ids, String field) {
        int vocab = model.config().vocabSize();
        for (int id : ids) {
            if (id >= vocab) {
                throw FieldViolation.invalid("prompt", field + ": the tokenizer gives id " + id + " ('"
                        + model.tokenizer().tokenString(id) + "'), outside the model's vocabulary [0, " + vocab + ")");
            }
        }
        return ids;
    }

    /**
     * Checks ids against the vocabulary: the model's (the lm_head size) where the tokenizer has a token
     * for each of its ids, else the tokenizer's (DeepSeek-V3 pads its 128,815 tokens to 129,280 rows).
     */
    int[] ids(List<Integer> ids, String field) {
        int vocab = Math.min(model.config().vocabSize(), model.tokenizer().size());
        int[] out = new int[ids.size()];
        for (int i = 0; i < out.length; i++) {
            int id = ids.get(i);
            if (id < 0 || id >= vocab) {
                throw FieldViolation.invalid(field.equals("prompt_token_ids") ? field : "prompt", field + "[" + i + "] = "
                        + Integer.toUnsignedString(id) + " is outside the vocabulary [0, " + vocab + ")");
            }
            out[i] = id;
        }
        return out;
    }

    /** Empty and over-long prompts; {@code reserve} positions must stay free after the prompt. */
    int[] checkLength(int[] ids, int reserve) {
        if (ids.length == 0) {
            throw invalid("prompt is empty: give chat messages, text or token ids");
        }
        if ((long) ids.length + reserve > model.maxContext()) {
            throw FieldViolation.invalid("prompt", "has " + ids.length + " tokens"
                    + (reserve > 0 ? " (+" + reserve + " to generate)" : "") + " but the context holds "
                    + model.maxContext() + " positions");
        }
        return ids;
    }

    private static dev.epic.text.chat.ChatMessage message(ChatMessage m, String where) {
        if (!ROLES.contains(m.getRole())) {
            throw invalid(where + ".role '" + m.getRole() + "' is not one of system, user, assistant, tool");
        }
        List<dev.epic.text.chat.ToolCall> calls = null;
        if (m.getToolCallsCount() > 0) {
            if (!m.getRole().equals("assistant")) {
                throw invalid(where + ".tool_calls: only assistant messages carry tool calls");
            }
            calls = new ArrayList<>();
            for (int j = 0; j < m.getToolCallsCount(); j++) {
                ToolCall c = m.getToolCalls(j);
                if (c.getName().isEmpty()) {
                    throw invalid(where + ".tool_calls[" + j + "].name is empty");
                }
                calls.add(new dev.epic.text.chat.ToolCall(c.getId().isEmpty() ? null : c.getId(), "function",
                        c.getName(), c.getArguments().isEmpty() ? "{}" : c.getArguments()));
            }
        }
        String content = m.getContent();
        if (calls != null && content.isEmpty()) {
            content = null; // an assistant turn that only calls tools
        }
        return new dev.epic.text.chat.ChatMessage(m.getRole(), content, calls,
                m.getReasoning().isEmpty() ? null : m.getReasoning(), null,
                m.getToolCallId().isEmpty() ? null : m.getToolCallId());
    }

    /** Whether a template reads the request's tool definitions at all. */
    private static final java.util.regex.Pattern TOOLS_VARIABLE = java.util.regex.Pattern.compile("\\btools\\b");

    /**
     * DeepSeek's own V3 and R1 templates render tool calls and results but not the tool definitions,
     * so with them the model would never see the tools it may call. As vLLM's tool templates for
     * DeepSeek do, the definitions and the exact call format (the one the output parser reads) then go
     * into the system prompt: appended to the first system message, or as one.
     */
    static List<dev.epic.text.chat.ChatMessage> withToolsSection(List<dev.epic.text.chat.ChatMessage> msgs,
            List<Object> toolMaps) {
        StringBuilder t = new StringBuilder("## Tools\n\nYou can call these functions:\n\n");
        for (Object tool : toolMaps) {
            Object fn = ((Map<?, ?>) tool).get("function");
            try {
                t.append("- `").append(((Map<?, ?>) fn).get("name")).append("`:\n```json\n")
                        .append(JSON.writeValueAsString(fn)).append("\n```\n");
            } catch (JsonProcessingException e) {
                throw new IllegalStateException(e); // maps of JSON values always serialise
            }
        }
        t.append("\nTo call functions, write exactly this, with one call block per function call and the"
                + " arguments a JSON object matching the function's parameters:\n"
                + DeepSeekMarkers.TOOL_CALLS_BEGIN + DeepSeekMarkers.TOOL_CALL_BEGIN + "function" + DeepSeekMarkers.TOOL_SEP
                + "FUNCTION_NAME\n```json\n{\"param\": \"value\"}\n```" + DeepSeekMarkers.TOOL_CALL_END
                + DeepSeekMarkers.TOOL_CALLS_END);
        List<dev.epic.text.chat.ChatMessage> out = new ArrayList<>(msgs);
        dev.epic.text.chat.ChatMessage first = out.get(0);
        if (first.role().equals("system") && first.content() != null) {
            out.set(0, dev.epic.text.chat.ChatMessage.system(first.content() + "\n\n" + t));
        } else {
            out.add(0, dev.epic.text.chat.ChatMessage.system(t.toString()));
        }
        return out;
    }

    /** OpenAI-shaped tool definitions, as the templates expect them. */
    private static List<Object> toolMaps(List<Tool> tools) {
        List<Object> out = new ArrayList<>(tools.size());
        for (int i = 0; i < tools.size(); i++) {
            Tool t = tools.get(i);
            if (t.getName().isEmpty()) {
                throw FieldViolation.invalid("tools", "tools[" + i + "].name is empty");
            }
            Map<String, Object> fn = new LinkedHashMap<>();
            fn.put("name", t.getName());
            fn.put("description", t.getDescription());
            String schema = t.getParametersJsonSchema();
            if (!schema.isEmpty()) {
                try {
                    Object params = JSON.readValue(schema, Object.class);
                    if (!(params instanceof Map)) {
                        throw FieldViolation.invalid("tools", "tools[" + i + "].parameters must be a JSON object");
                    }
                    fn.put("parameters", params);
                } catch (JsonProcessingException e) {
                    throw FieldViolation.invalid("tools", "tools[" + i + "].parameters is not valid JSON: "
                            + e.getOriginalMessage());
                }
            }
            Map<String, Object> tool = new LinkedHashMap<>();
            tool.put("type", "function");
            tool.put("function", fn);
            out.add(tool);
        }
        return out;
    }

    static StatusRuntimeException invalid(String message) {
        return Status.INVALID_ARGUMENT.withDescription(message).asRuntimeException();
    }
}
