package dev.epic.coordinator.openai;

import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.TokenLogprob;
import dev.epic.proto.TopLogprob;
import dev.epic.proto.ToolCall;
import dev.epic.proto.Usage;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * GenerateResponse streams as OpenAI objects: {@code chat.completion} and its
 * {@code chat.completion.chunk}s, {@code text_completion} (whole or streamed). Reasoning goes to
 * {@code reasoning_content}, as vLLM and SGLang return DeepSeek-R1's thinking.
 */
final class OpenAiResponses {
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;
    /** JSON has no -Infinity; vLLM reports an impossible token's logprob as this. */
    private static final float MIN_LOGPROB = -9999f;

    /** chat.completion or text_completion. */
    enum Kind {
        CHAT("chatcmpl-", "chat.completion", "chat.completion.chunk"),
        TEXT("cmpl-", "text_completion", "text_completion");

        final String idPrefix;
        final String object;
        final String chunkObject;

        Kind(String idPrefix, String object, String chunkObject) {
            this.idPrefix = idPrefix;
            this.object = object;
            this.chunkObject = chunkObject;
        }
    }

    private final Kind kind;
    private final String model;
    private final long created;
    private final boolean logprobs;
    private final boolean includeUsage;
    private String id;
    /** Per choice index: what has come so far. */
    private final List<Choice> choices = new ArrayList<>();

    /**
     * {@code promptOnly}: an echoed completion with max_tokens 0, whose one generated token is left out.
     * {@code samplesPerPrompt}: n; choices i * n .. i * n + n - 1 are prompt i's.
     */
    OpenAiResponses(Kind kind, String model, long createdEpochSeconds, boolean logprobs, boolean includeUsage,
            boolean promptOnly, int samplesPerPrompt) {
        this.samplesPerPrompt = samplesPerPrompt;
        this.kind = kind;
        this.model = model;
        this.created = createdEpochSeconds;
        this.logprobs = logprobs;
        this.includeUsage = includeUsage;
        this.promptOnly = promptOnly;
    }

    private final boolean promptOnly;
    private final int samplesPerPrompt;
    private String systemFingerprint;

    /** OpenAI's {@code system_fingerprint} on every object ({@code ServedModel.systemFingerprint}); null: none. */
    OpenAiResponses systemFingerprint(String fingerprint) {
        this.systemFingerprint = fingerprint == null || fingerprint.isEmpty() ? null : fingerprint;
        return this;
    }
    /** parallel_tool_calls false: each choice keeps its first tool call only. */
    private boolean oneToolCall;

    /** vLLM's {@code prompt_logprobs}: the answer carries each prompt token's (a completion per choice, chat once). */
    private boolean promptLogprobs;

    /** vLLM's {@code return_tokens_as_token_ids}: logprobs name each token "token_id:N" instead of by its text. */
    private boolean tokensAsIds;

    OpenAiResponses tokensAsIds(boolean on) {
        tokensAsIds = on;
        return this;
    }

    /** vLLM's {@code stream_options.continuous_usage_stats}: each chunk carries its choice's usage so far. */
    private boolean continuousUsage;

    OpenAiResponses continuousUsage(boolean on) {
        continuousUsage = on;
        return this;
    }

    /** How logprobs name a token: its text, or with {@link #tokensAsIds} "token_id:N" (vLLM's form). */
    private String name(ByteString token, int id) {
        return tokensAsIds ? "token_id:" + id : token.toStringUtf8();
    }

    OpenAiResponses promptLogprobs(boolean on) {
        promptLogprobs = on;
        return this;
    }

    /** Keeps only each choice's first tool call (parallel_tool_calls false); the finish reason stays "tool_calls". */
    OpenAiResponses oneToolCall(boolean one) {
        oneToolCall = one;
        return this;
    }

    /**
     * Makes completion choices [first, first + count) start with their prompt: its text, and its
     * tokens' bytes for the logprobs.
     */
    void echo(int first, int count, String promptText, List<ByteString> promptTokens, List<Integer> promptIds) {
        for (int i = first; i < first + count; i++) {
            choice(i).echoText = promptText;
            choice(i).echoTokens = promptTokens;
            choice(i).echoIds = promptIds;
        }
    }

    /** Makes chat choices [first, first + count) start with {@code text} (vLLM's chat echo: the last message's). */
    void echoChat(int first, int count, String text) {
        for (int i = first; i < first + count; i++) {
            choice(i).echoText = text;
        }
    }

    private static final class Choice {
        /**
         * What an answer with {@code echo} starts with (null without): a completion's prompt, with its tokens;
         * a chat answer's last message.
         */
        String echoText;
        List<ByteString> echoTokens;
        List<Integer> echoIds;
        final StringBuilder text = new StringBuilder();
        final StringBuilder reasoning = new StringBuilder();
        final List<ToolCall> toolCalls = new ArrayList<>();
        final List<TokenLogprob> logprobs = new ArrayList<>();
        /** vLLM's prompt_logprobs: the first message's, for prompt tokens 1.. (null when not asked). */
        List<TokenLogprob> promptLogprobs;
        /** A completion's logprobs so far, in the legacy shape; its text_offset runs on from textOffset. */
        final ObjectNode legacy = legacyNode();
        int textOffset;
        boolean started;
        FinishReason finish;
        Usage usage;
    }

    private Choice choice(int index) {
        while (choices.size() <= index) {
            choices.add(new Choice());
        }
        return choices.get(index);
    }

    /**
     * Takes one message of the stream and returns the chunks a streaming client gets for it (none,
     * one, or two when a chat choice starts: the role first, as OpenAI sends it).
     */
    List<ObjectNode> accept(GenerateResponse r) {
        return accept(r, 0);
    }

    /** As {@link #accept(GenerateResponse)} for a stream whose choices start at {@code firstChoice} (one of several prompts). */
    List<ObjectNode> accept(GenerateResponse r, int firstChoice) {
        List<ObjectNode> chunks = chunks(r, firstChoice);
        if (continuousUsage && r.hasUsage()) { // vLLM's continuous_usage_stats: the choice's usage so far
            Usage u = r.getUsage();
            for (ObjectNode chunk : chunks) {
                chunk.putObject("usage").put("prompt_tokens", u.getPromptTokens())
                        .put("completion_tokens", u.getCompletionTokens())
                        .put("total_tokens", u.getPromptTokens() + u.getCompletionTokens());
            }
        }
        return chunks;
    }

    private List<ObjectNode> chunks(GenerateResponse r, int firstChoice) {
        if (id == null) {
            id = kind.idPrefix + r.getRequestId();
        }
        int index = firstChoice + r.getIndex();
        Choice c = choice(index);
        List<ObjectNode> chunks = new ArrayList<>(2);
        boolean first = !c.started;
        c.started = true;
        if (first && promptLogprobs) {
            c.promptLogprobs = r.getPromptLogprobsList();
        }
        if (kind == Kind.CHAT && first) {
            ObjectNode delta = NODES.objectNode().put("role", "assistant").put("content", "");
            chunks.add(chunk(index, delta, null, null));
            if (c.echoText != null) { // as vLLM streams it: a chunk of its own after the role's
                chunks.add(chunk(index, NODES.objectNode().put("content", c.echoText), null, null));
                c.text.append(c.echoText);
            }
        }
        boolean finished = r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED;
        String finish = finished ? finishReason(r.getFinishReason()) : null;
        // Calls after a choice's first are dropped here, in whichever message they come, so streamed and
        // whole answers agree.
        List<ToolCall> newCalls = !oneToolCall ? r.getToolCallsList()
                : r.getToolCallsList().subList(0, Math.min(r.getToolCallsCount(), c.toolCalls.isEmpty() ? 1 : 0));
        if (kind == Kind.CHAT) {
            ArrayNode lp = null;
            if (logprobs && r.getLogprobsCount() > 0) {
                lp = NODES.arrayNode();
                for (TokenLogprob l : r.getLogprobsList()) {
                    lp.add(chatLogprob(l));
                }
            }
            ObjectNode delta = NODES.objectNode();
            if (!r.getReasoningText().isEmpty()) {
                delta.put("reasoning_content", r.getReasoningText());
            }
            if (!r.getText().isEmpty()) {
                delta.put("content", r.getText());
            }
            if (!newCalls.isEmpty()) {
                ArrayNode calls = delta.putArray("tool_calls");
                for (ToolCall t : newCalls) {
                    calls.add(toolCall(t).put("index", c.toolCalls.size() + calls.size()));
                }
            }
            if (!delta.isEmpty() || lp != null || finish != null) {
                chunks.add(chunk(index, delta, lp == null ? null : NODES.objectNode().set("content", lp), finish));
            }
            c.reasoning.append(r.getReasoningText());
            c.text.append(r.getText());
        } else {
            chunks.addAll(completionChunk(r, index, c, first, finish));
        }
        c.toolCalls.addAll(newCalls);
        c.logprobs.addAll(r.getLogprobsList());
        if (finished) {
            c.finish = r.getFinishReason();
            c.usage = r.getUsage();
        }
        return chunks;
    }

    /**
     * A completion's part of one message: its text (everything generated, reasoning included, since
     * a completion has no template to split it by) after the echoed prompt on the first message, and
     * the same tokens' legacy logprobs. The prompt's first token has no logprob (null, as OpenAI's).
     */
    private List<ObjectNode> completionChunk(GenerateResponse r, int index, Choice c, boolean first, String finish) {
        StringBuilder text = new StringBuilder();
        ObjectNode lp = logprobs ? legacyNode() : null;
        if (first && c.echoText != null) {
            text.append(c.echoText);
            if (lp != null) {
                for (int i = 0; i < c.echoTokens.size(); i++) {
                    TokenLogprob l = i == 0 || i > r.getPromptLogprobsCount() ? null : r.getPromptLogprobs(i - 1);
                    c.textOffset = appendLegacy(lp, c.legacy, name(c.echoTokens.get(i), c.echoIds.get(i)), l, c.textOffset);
                }
            }
        }
        if (!promptOnly) {
            text.append(r.getReasoningText()).append(r.getText());
            if (lp != null) {
                for (TokenLogprob l : r.getLogprobsList()) {
                    c.textOffset = appendLegacy(lp, c.legacy, name(l.getToken(), l.getTokenId()), l, c.textOffset);
                }
            }
        }
        c.text.append(text);
        if (text.isEmpty() && (lp == null || lp.get("tokens").isEmpty()) && finish == null) {
            return List.of();
        }
        ObjectNode ch = NODES.objectNode().put("index", index).put("text", text.toString());
        ch.set("logprobs", lp);
        ch.put("finish_reason", finish);
        return List.of(envelope(ch));
    }

    /** The closing chunk with the usage of all choices ({@code stream_options.include_usage}). */
    ObjectNode usageChunk() {
        ObjectNode o = NODES.objectNode().put("id", id).put("object", kind.chunkObject).put("created", created)
                .put("model", model).put("system_fingerprint", systemFingerprint);
        o.putArray("choices");
        o.set("usage", usage());
        return o;
    }

    /** The whole answer, once every choice has finished. */
    ObjectNode complete() {
        ObjectNode o = NODES.objectNode().put("id", id).put("object", kind.object).put("created", created)
                .put("model", model).put("system_fingerprint", systemFingerprint);
        ArrayNode list = o.putArray("choices");
        for (int i = 0; i < choices.size(); i++) {
            Choice c = choices.get(i);
            ObjectNode ch = list.addObject().put("index", i);
            if (kind == Kind.CHAT) {
                ObjectNode m = ch.putObject("message").put("role", "assistant");
                // OpenAI's content is null when the answer is only tool calls.
                m.put("content", c.text.isEmpty() && !c.toolCalls.isEmpty() ? null : c.text.toString());
                m.put("reasoning_content", c.reasoning.isEmpty() ? null : c.reasoning.toString());
                if (!c.toolCalls.isEmpty()) {
                    ArrayNode calls = m.putArray("tool_calls");
                    c.toolCalls.forEach(t -> calls.add(toolCall(t)));
                }
                if (logprobs) {
                    ArrayNode content = NODES.arrayNode();
                    c.logprobs.forEach(l -> content.add(chatLogprob(l)));
                    ch.putObject("logprobs").set("content", content);
                } else {
                    ch.putNull("logprobs");
                }
            } else {
                ch.put("text", c.text.toString());
                ch.set("logprobs", logprobs ? c.legacy : null);
                if (promptLogprobs) {
                    ch.set("prompt_logprobs", promptLogprobs(c.promptLogprobs));
                }
            }
            ch.put("finish_reason", c.finish == null ? null : finishReason(c.finish));
        }
        if (promptLogprobs && kind == Kind.CHAT) { // one prompt: vLLM puts them beside the choices
            o.set("prompt_logprobs", promptLogprobs(choices.isEmpty() ? null : choices.getFirst().promptLogprobs));
        }
        o.set("usage", usage());
        return o;
    }

    /**
     * vLLM's prompt_logprobs: null for the first prompt token, then per token an object from token id to
     * {@code {logprob, rank, decoded_token}}, the prompt's own token first, then the most likely ones
     * (ranks 1..N; the prompt's token once, where it is among them).
     */
    private static ArrayNode promptLogprobs(List<TokenLogprob> entries) {
        ArrayNode a = NODES.arrayNode();
        a.addNull();
        for (TokenLogprob l : entries == null ? List.<TokenLogprob>of() : entries) {
            ObjectNode e = a.addObject();
            e.putObject(Integer.toString(l.getTokenId())).put("logprob", l.getLogprob()).put("rank", l.getRank())
                    .put("decoded_token", l.getToken().toStringUtf8());
            for (int j = 0; j < l.getTopCount(); j++) {
                var t = l.getTop(j);
                if (t.getTokenId() != l.getTokenId()) {
                    e.putObject(Integer.toString(t.getTokenId())).put("logprob", t.getLogprob()).put("rank", j + 1)
                            .put("decoded_token", t.getToken().toStringUtf8());
                }
            }
        }
        return a;
    }

    /** Usage over all choices: each prompt once, the completions added up (as OpenAI counts n > 1). */
    private ObjectNode usage() {
        int prompt = 0, cached = 0, completion = 0, reasoning = 0;
        for (int i = 0; i < choices.size(); i++) {
            Usage u = choices.get(i).usage;
            if (u == null) {
                continue;
            }
            if (i % samplesPerPrompt == 0) {
                prompt += u.getPromptTokens();
                cached += u.getCachedPromptTokens();
            }
            if (!promptOnly) {
                completion += u.getCompletionTokens();
                reasoning += u.getReasoningTokens();
            }
        }
        ObjectNode o = NODES.objectNode().put("prompt_tokens", prompt).put("completion_tokens", completion)
                .put("total_tokens", prompt + completion);
        o.putObject("prompt_tokens_details").put("cached_tokens", cached);
        o.putObject("completion_tokens_details").put("reasoning_tokens", reasoning);
        return o;
    }

    private ObjectNode chunk(int index, ObjectNode delta, ObjectNode logprobs, String finish) {
        ObjectNode ch = NODES.objectNode().put("index", index);
        ch.set("delta", delta);
        ch.set("logprobs", logprobs);
        ch.put("finish_reason", finish);
        return envelope(ch);
    }

    private ObjectNode envelope(ObjectNode choice) {
        ObjectNode o = NODES.objectNode().put("id", id).put("object", kind.chunkObject).put("created", created)
                .put("model", model).put("system_fingerprint", systemFingerprint);
        o.putArray("choices").add(choice);
        if (includeUsage) {
            o.putNull("usage");
        }
        return o;
    }

    private static ObjectNode toolCall(ToolCall t) {
        ObjectNode o = NODES.objectNode().put("id", t.getId()).put("type", "function");
        o.putObject("function").put("name", t.getName()).put("arguments", t.getArguments());
        return o;
    }

    /** OpenAI's finish_reason; a completion has no tool_calls (its text holds whatever the model wrote). */
    private String finishReason(FinishReason r) {
        if (promptOnly) {
            return "length";
        }
        return kind == Kind.TEXT && r == FinishReason.TOOL_CALLS ? "stop" : finish(r);
    }

    private static String finish(FinishReason r) {
        return switch (r) {
            case STOP -> "stop";
            case LENGTH -> "length";
            case TOOL_CALLS -> "tool_calls";
            case CANCELLED -> "abort";
            default -> "error";
        };
    }

    private ObjectNode chatLogprob(TokenLogprob l) {
        ObjectNode o = entry(l.getToken(), l.getTokenId(), l.getLogprob());
        ArrayNode top = o.putArray("top_logprobs");
        for (TopLogprob t : l.getTopList()) {
            top.add(entry(t.getToken(), t.getTokenId(), t.getLogprob()));
        }
        return o;
    }

    /** One token's entry: its name, logprob and the bytes of the name (of the token's text: its own bytes). */
    private ObjectNode entry(ByteString token, int id, float logprob) {
        ObjectNode o = NODES.objectNode().put("token", name(token, id)).put("logprob", finite(logprob));
        ArrayNode bytes = o.putArray("bytes");
        ByteString b = tokensAsIds ? ByteString.copyFromUtf8(name(token, id)) : token;
        for (int i = 0; i < b.size(); i++) {
            bytes.add(b.byteAt(i) & 0xff);
        }
        return o;
    }

    /** The legacy completions shape: parallel lists, each position's alternatives as a token → logprob map. */
    private static ObjectNode legacyNode() {
        ObjectNode o = NODES.objectNode();
        o.putArray("tokens");
        o.putArray("token_logprobs");
        o.putArray("top_logprobs");
        o.putArray("text_offset");
        return o;
    }

    /**
     * Appends one token to both legacy nodes (the chunk's and the choice's); l is null for a prompt's
     * first token. Returns the text offset after it.
     */
    private int appendLegacy(ObjectNode chunk, ObjectNode all, String token, TokenLogprob l, int offset) {
        for (ObjectNode o : new ObjectNode[] {chunk, all}) {
            ((ArrayNode) o.get("tokens")).add(token);
            ((ArrayNode) o.get("text_offset")).add(offset);
            ArrayNode values = (ArrayNode) o.get("token_logprobs"), top = (ArrayNode) o.get("top_logprobs");
            if (l == null) {
                values.addNull();
                top.addNull();
            } else {
                values.add(finite(l.getLogprob()));
                ObjectNode alternatives = top.addObject();
                for (TopLogprob t : l.getTopList()) {
                    alternatives.put(name(t.getToken(), t.getTokenId()), finite(t.getLogprob()));
                }
            }
        }
        // Code points, as vLLM counts (Python str length): a character beyond the BMP is one, not two UTF-16 units.
        return offset + token.codePointCount(0, token.length());
    }

    private static float finite(float logprob) {
        return Float.isFinite(logprob) ? logprob : MIN_LOGPROB;
    }

    /** An error body in OpenAI's shape. */
    static ObjectNode error(OpenAiError e) {
        ObjectNode o = NODES.objectNode();
        o.putObject("error").put("message", e.getMessage()).put("type", e.type).put("param", e.param)
                .put("code", e.httpStatus);
        return o;
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }
}
