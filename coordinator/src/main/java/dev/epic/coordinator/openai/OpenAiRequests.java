package dev.epic.coordinator.openai;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.DetokenizeRequest;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.Messages;
import dev.epic.proto.ResponseFormat;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.TokenIds;
import dev.epic.proto.TokenizeRequest;
import dev.epic.proto.Tool;
import dev.epic.proto.ToolCall;
import dev.epic.proto.ToolChoice;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.StringJoiner;

/**
 * OpenAI request bodies ({@code /v1/chat/completions}, {@code /v1/completions}) as GenerateRequests.
 * The sampling fields are OpenAI's plus vLLM's extensions ({@code top_k}, {@code min_p},
 * {@code repetition_penalty}, {@code min_tokens}, {@code stop_token_ids}, {@code allowed_token_ids}, {@code ignore_eos},
 * {@code include_stop_str_in_output}, {@code skip_special_tokens}, {@code chat_template_kwargs.enable_thinking}); their ranges are
 * the coordinator's to check, so its INVALID_ARGUMENT message reaches the client. Fields this server
 * cannot honour are refused by name rather than ignored; unknown fields are ignored, as OpenAI SDKs
 * send some of their own. Prefill (vLLM's {@code continue_final_message}, DeepSeek's assistant
 * {@code prefix}) and vLLM's {@code truncate_prompt_tokens} are passed on.
 */
final class OpenAiRequests {
    /** Legacy completions without max_tokens stop after 16 tokens (OpenAI's and vLLM's default); chat runs to the context's end. */
    static final int COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

    static final ObjectMapper JSON = new ObjectMapper();

    /**
     * A parsed request: what to generate and how to answer. {@code echo}: a completion's answer starts
     * with its prompt (and the prompt's logprobs); {@code promptOnly}: echo with {@code max_tokens} 0,
     * so the one token generated is left out (scoring a prompt, as evaluation harnesses do);
     * {@code oneToolCall}: parallel_tool_calls false, so the answer keeps only its first tool call.
     */
    record Parsed(List<GenerateRequest> requests, String model, boolean stream, boolean includeUsage, boolean logprobs,
            boolean echo, boolean promptOnly, boolean oneToolCall, boolean promptLogprobs, boolean tokensAsIds,
            String chatEcho) {
        /** The request of a single-prompt body. */
        GenerateRequest request() {
            return requests.getFirst();
        }

        Parsed withChatEcho(String text) {
            return new Parsed(requests, model, stream, includeUsage, logprobs, echo, promptOnly, oneToolCall, promptLogprobs,
                    tokensAsIds, text);
        }

        /** Samples per prompt (the request's n). */
        int n() {
            return request().getSampling().hasN() ? Math.max(1, request().getSampling().getN()) : 1;
        }
    }

    private static final Set<String> ROLES = Set.of("system", "developer", "user", "assistant", "tool");

    private OpenAiRequests() {}

    static JsonNode parse(byte[] body) {
        try {
            // Trailing tokens after the object are an error, not ignored (as vLLM's parser refuses them).
            JsonNode n = JSON.reader().with(com.fasterxml.jackson.databind.DeserializationFeature.FAIL_ON_TRAILING_TOKENS)
                    .readTree(body);
            if (n == null || !n.isObject()) {
                throw OpenAiError.badRequest(null, "the request body must be a JSON object");
            }
            return n;
        } catch (JsonProcessingException e) {
            throw OpenAiError.badRequest(null, "the request body is not valid JSON: " + e.getOriginalMessage());
        } catch (java.io.IOException e) {
            throw OpenAiError.badRequest(null, "the request body could not be read: " + e.getMessage());
        }
    }

    /** A {@code /v1/chat/completions} body. */
    static Parsed chat(JsonNode body) {
        GenerateRequest.Builder r = GenerateRequest.newBuilder();
        refuseUnsupported(body);
        beamSearch(body, r);
        Messages messages = messages(body);
        r.setChat(messages);
        if (present(body, "chat_template")) { // the coordinator takes it only when trusted to
            r.setChatTemplate(text(body, "chat_template", "chat_template"));
        }
        r.setChatTemplateKwargs(templateKwargs(body));
        prefill(body, messages, r);
        truncation(body, r);
        r.addAllTools(tools(body));
        ToolChoice choice = toolChoice(body);
        if (choice.getMode() != ToolChoice.Mode.AUTO) {
            r.setToolChoice(choice);
        }
        responseFormat(body, r);
        Boolean thinking = thinking(body); // unset: the coordinator's default (none for constrained answers)
        if (thinking != null) {
            r.setEnableThinking(thinking);
        }
        SamplingParams.Builder s = sampling(body);
        if (present(body, "max_completion_tokens")) {
            // Checked here so that the error names the field the client sent (the coordinator's says max_tokens).
            int max = count(body, "max_completion_tokens");
            if (max < 1) {
                throw OpenAiError.badRequest("max_completion_tokens", "'max_completion_tokens' must be >= 1, got " + max);
            }
            s.setMaxTokens(max);
        }
        boolean logprobs = present(body, "logprobs") && bool(body, "logprobs", "logprobs");
        if (present(body, "top_logprobs")) {
            int top = count(body, "top_logprobs");
            if (top > dev.epic.text.sampling.Logprobs.MAX_TOP) { // chat's logprobs is the switch; the count is this
                throw OpenAiError.badRequest("top_logprobs", "'top_logprobs' must be in [0, "
                        + dev.epic.text.sampling.Logprobs.MAX_TOP + "], got " + top);
            }
            if (logprobs) {
                s.setLogprobs(top);
            } else if (top > 0) { // 0 without logprobs asks for nothing (vLLM accepts it)
                throw OpenAiError.badRequest("top_logprobs", "'top_logprobs' needs 'logprobs': true");
            }
        } else if (logprobs) {
            s.setLogprobs(0);
        }
        r.setSampling(s);
        // parallel_tool_calls false: a model left to choose ("auto") may still write several calls, so the
        // answer keeps the first, as vLLM's does ("required" is held to one call by the mask as well).
        boolean oneToolCall = present(body, "parallel_tool_calls") && !bool(body, "parallel_tool_calls", "parallel_tool_calls");
        Parsed p = finish(null, r, body, logprobs, false, false, oneToolCall);
        return present(body, "echo") && bool(body, "echo", "echo") ? p.withChatEcho(chatEcho(r)) : p;
    }

    /**
     * vLLM's chat echo: the answer starts with the last message's content when that message has the answer's
     * role (the assistant's with a generation prompt; else, continuing it, its own); null when it does not.
     */
    private static String chatEcho(GenerateRequest.Builder r) {
        List<ChatMessage> messages = r.getChat().getMessagesList();
        ChatMessage last = messages.getLast();
        boolean generationPrompt = r.hasAddGenerationPrompt() ? r.getAddGenerationPrompt() : !r.getContinueFinalMessage();
        String role = generationPrompt ? "assistant" : last.getRole();
        return last.getRole().equals(role) && !last.getContent().isEmpty() ? last.getContent() : null;
    }

    /**
     * A {@code /v1/completions} body: one prompt or a list of them, each as text or token ids,
     * rendered without a template; one GenerateRequest per prompt.
     */
    static Parsed completion(JsonNode body) {
        GenerateRequest.Builder r = GenerateRequest.newBuilder();
        List<JsonNode> prompts = prompts(body.get("prompt"));
        if (present(body, "suffix")) { // DeepSeek's FIM completion: the answer goes between prompt and suffix
            if (!body.get("suffix").isTextual()) {
                throw OpenAiError.badRequest("suffix", "'suffix' must be a string");
            }
            if (present(body, "echo") && bool(body, "echo", "echo")) {
                throw OpenAiError.badRequest("suffix", "'suffix' with 'echo' is not supported: the prompt answered is "
                        + "the fill-in-the-middle frame around both");
            }
            r.setSuffix(body.get("suffix").asText());
        }
        refuseUnsupported(body);
        beamSearch(body, r);
        truncation(body, r);
        // A completion is the decoded text as is; its prompt starts with BOS unless the client says not.
        r.setRawOutput(true).setAddSpecialTokens(addSpecialTokens(body));
        responseFormat(body, r);
        SamplingParams.Builder s = sampling(body);
        if (!s.hasMaxTokens()) {
            s.setMaxTokens(COMPLETIONS_DEFAULT_MAX_TOKENS);
        }
        boolean logprobs = present(body, "logprobs");
        if (logprobs) {
            s.setLogprobs(count(body, "logprobs"));
        }
        boolean echo = present(body, "echo") && bool(body, "echo", "echo");
        boolean promptOnly = echo && s.hasMaxTokens() && s.getMaxTokens() == 0;
        if (echo && logprobs) {
            s.setPromptLogprobs(s.getLogprobs());
        }
        if (promptOnly) {
            s.setMaxTokens(1).clearMinTokens(); // the coordinator generates at least one token; the answer leaves it out
        }
        r.setSampling(s);
        List<GenerateRequest> each = new ArrayList<>(prompts.size());
        for (JsonNode p : prompts) {
            if (p.isTextual()) {
                r.setText(p.asText());
            } else {
                TokenIds.Builder ids = TokenIds.newBuilder();
                for (JsonNode id : p) {
                    ids.addIds(tokenId(id, "prompt"));
                }
                r.setTokenIds(ids);
            }
            each.add(r.build());
        }
        return finish(each, r, body, logprobs, echo, promptOnly, false);
    }

    /** "text", [ids], ["text", ...] or [[ids], ...]: each prompt as a text node or an array of ids. */
    private static List<JsonNode> prompts(JsonNode prompt) {
        if (prompt == null || prompt.isNull()) {
            throw OpenAiError.badRequest("prompt", "'prompt' is required");
        }
        if (prompt.isTextual() || prompt.isArray() && !prompt.isEmpty() && allInts(prompt)) {
            return List.of(prompt);
        }
        if (prompt.isArray() && !prompt.isEmpty()) {
            List<JsonNode> list = new ArrayList<>(prompt.size());
            for (JsonNode p : prompt) {
                if (!p.isTextual() && !(p.isArray() && !p.isEmpty() && allInts(p))) {
                    throw OpenAiError.badRequest("prompt", "each prompt in the list must be a string or a non-empty "
                            + "array of token ids");
                }
                list.add(p);
            }
            return list;
        }
        throw OpenAiError.badRequest("prompt", "'prompt' must be a string, a non-empty array of token ids, or a list of those");
    }

    /**
     * Prefill: vLLM's {@code continue_final_message} (with {@code add_generation_prompt} false, its
     * default then), or DeepSeek's chat prefix completion, an assistant message last with
     * {@code "prefix": true}: the answer continues that message. {@code add_generation_prompt} false alone
     * renders the conversation without the assistant's generation prompt.
     */
    private static void prefill(JsonNode body, Messages messages, GenerateRequest.Builder r) {
        boolean continued = present(body, "continue_final_message")
                && bool(body, "continue_final_message", "continue_final_message");
        JsonNode sent = body.get("messages");
        for (int i = 0; i < sent.size(); i++) {
            JsonNode m = sent.get(i);
            if (!present(m, "prefix") || !bool(m, "prefix", "messages[" + i + "].prefix")) {
                continue;
            }
            String where = "messages[" + i + "]";
            if (i != sent.size() - 1 || !messages.getMessages(i).getRole().equals("assistant")) {
                throw OpenAiError.badRequest(where + ".prefix", "'" + where + ".prefix': true is only for the last "
                        + "message, an assistant's (DeepSeek's chat prefix completion)");
            }
            if (present(m, "reasoning_content")) { // the templates leave an assistant's reasoning out of the prompt
                throw OpenAiError.badRequest(where + ".reasoning_content", "'" + where + ".reasoning_content' with "
                        + "'prefix': true is not supported: put the text to continue in 'content'");
            }
            continued = true;
        }
        if (present(body, "add_generation_prompt")) {
            boolean generationPrompt = bool(body, "add_generation_prompt", "add_generation_prompt");
            if (continued && generationPrompt) {
                throw OpenAiError.badRequest("add_generation_prompt", "continuing the final message needs "
                        + "'add_generation_prompt': false (both true is refused, as in vLLM)");
            }
            r.setAddGenerationPrompt(generationPrompt);
        }
        r.setContinueFinalMessage(continued);
    }

    /** vLLM's {@code truncate_prompt_tokens}: keep the prompt's last N tokens (-1: as many as the context holds). */
    private static void truncation(JsonNode body, GenerateRequest.Builder r) {
        if (!present(body, "truncate_prompt_tokens")) {
            return;
        }
        if (present(body, "echo") && bool(body, "echo", "echo")) {
            throw OpenAiError.badRequest("truncate_prompt_tokens", "'truncate_prompt_tokens' with 'echo' is not "
                    + "supported: the echoed prompt would not be the one answered");
        }
        r.setTruncatePromptTokens(integer(body, "truncate_prompt_tokens"));
    }

    /**
     * Fields that change the answer and that this server cannot honour: refused by name rather than
     * ignored (their defaults pass).
     */
    private static void refuseUnsupported(JsonNode body) {
        for (String name : new String[] {"guided_whitespace_pattern", "functions", "function_call"}) {
            if (present(body, name)) {
                throw OpenAiError.badRequest(name, "'" + name + "' is not supported");
            }
        }
        // A backend name alone changes nothing here; its options (vLLM's "xgrammar:disable-any-whitespace") would.
        if (present(body, "guided_decoding_backend") && body.get("guided_decoding_backend").asText("").contains(":")) {
            throw OpenAiError.badRequest("guided_decoding_backend", "guided_decoding_backend options are not supported");
        }
        if (present(body, "best_of")) { // as vLLM: an integer >= n; more than n would need ranking, not done here
            int bestOf = integer(body, "best_of");
            int n = present(body, "n") && whole(body.get("n")) ? body.get("n").intValue() : 1;
            if (bestOf < n) {
                throw OpenAiError.badRequest("best_of", "'best_of' must be >= n (" + n + "), got " + bestOf);
            }
            if (bestOf > n) {
                throw OpenAiError.badRequest("best_of", "'best_of' above 'n' is not supported");
            }
        }
    }

    /** vLLM's {@code use_beam_search}: n beams, scored with {@code length_penalty}. */
    private static void beamSearch(JsonNode body, GenerateRequest.Builder r) {
        if (present(body, "use_beam_search") && bool(body, "use_beam_search", "use_beam_search")) {
            dev.epic.proto.BeamSearch.Builder b = dev.epic.proto.BeamSearch.newBuilder();
            if (present(body, "length_penalty")) {
                b.setLengthPenalty(number(body, "length_penalty"));
            }
            r.setBeamSearch(b);
        }
    }

    private static void refuseIfTrue(JsonNode body, String name) {
        if (present(body, name) && bool(body, name, name)) {
            throw OpenAiError.badRequest(name, "'" + name + "' is not supported");
        }
    }

    /**
     * response_format: "text" (the default), "json_object" or "json_schema"; or vLLM's guided_json,
     * guided_regex, guided_choice, guided_grammar, or structured_outputs with one of json, regex,
     * choice, grammar or json_object. At most one of them, set on r.
     */
    private static void responseFormat(JsonNode body, GenerateRequest.Builder r) {
        ResponseFormat guided = guided(body);
        if (guided != null) {
            if (present(body, "response_format") && !body.get("response_format").path("type").asText().equals("text")) {
                throw OpenAiError.badRequest("response_format", "response_format cannot be combined with guided decoding");
            }
            r.setResponseFormat(guided);
            return;
        }
        JsonNode format = body.get("response_format");
        if (format == null || format.isNull()) {
            return;
        }
        String type = format.path("type").asText();
        switch (type) {
            case "text" -> { }
            case "json_object" -> r.setResponseFormat(ResponseFormat.newBuilder().setType(ResponseFormat.Type.JSON_OBJECT));
            case "json_schema" -> {
                JsonNode schema = format.path("json_schema").get("schema");
                if (schema == null || !(schema.isObject() || schema.isBoolean())) {
                    throw OpenAiError.badRequest("response_format",
                            "response_format json_schema needs json_schema.schema, a JSON schema object");
                }
                r.setResponseFormat(ResponseFormat.newBuilder().setType(ResponseFormat.Type.JSON_SCHEMA)
                        .setJsonSchema(schema.toString()));
            }
            default -> throw OpenAiError.badRequest("response_format",
                    "response_format '" + type + "' is not supported ('text', 'json_object' and 'json_schema' are)");
        }
    }

    /** vLLM's guided decoding fields (the older guided_* and the newer structured_outputs), or null. */
    private static ResponseFormat guided(JsonNode body) {
        java.util.Map<String, JsonNode> asked = new java.util.LinkedHashMap<>();
        for (String name : new String[] {"guided_json", "guided_regex", "guided_choice", "guided_grammar"}) {
            if (present(body, name)) {
                asked.put(name, body.get(name));
            }
        }
        if (present(body, "structured_outputs")) {
            JsonNode so = body.get("structured_outputs");
            if (!so.isObject()) {
                throw OpenAiError.badRequest("structured_outputs", "'structured_outputs' must be an object");
            }
            for (java.util.Iterator<String> it = so.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                JsonNode v = so.get(k);
                String param = "structured_outputs." + k;
                switch (k) {
                    case "json", "regex", "choice", "grammar" -> {
                        if (!v.isNull()) {
                            asked.put(param, v);
                        }
                    }
                    case "json_object" -> {
                        if (bool(so, k, param)) {
                            asked.put(param, v);
                        }
                    }
                    case "disable_fallback" -> { } // which backend runs it: the answer is the same
                    default -> {
                        if (!v.isNull() && !(v.isBoolean() && !v.asBoolean())) {
                            throw OpenAiError.badRequest(param, "'" + param + "' is not supported");
                        }
                    }
                }
            }
        }
        if (asked.isEmpty()) {
            return null;
        }
        if (asked.size() > 1) {
            throw OpenAiError.badRequest(asked.keySet().iterator().next(), "guided decoding takes one of "
                    + asked.keySet() + ", not several");
        }
        String param = asked.keySet().iterator().next();
        JsonNode v = asked.get(param);
        ResponseFormat.Builder f = ResponseFormat.newBuilder();
        if (param.endsWith("json_object")) {
            return f.setType(ResponseFormat.Type.JSON_OBJECT).build();
        }
        if (param.endsWith("json")) {
            // A schema object, or (as vLLM takes it) a string holding one.
            if (!(v.isObject() || v.isBoolean() || v.isTextual())) {
                throw OpenAiError.badRequest(param, "'" + param + "' must be a JSON schema");
            }
            return f.setType(ResponseFormat.Type.JSON_SCHEMA).setJsonSchema(v.isTextual() ? v.asText() : v.toString()).build();
        }
        if (param.endsWith("regex") || param.endsWith("grammar")) {
            if (!v.isTextual()) {
                throw OpenAiError.badRequest(param, "'" + param + "' must be a string");
            }
            return param.endsWith("regex") ? f.setType(ResponseFormat.Type.REGEX).setRegex(v.asText()).build()
                    : f.setType(ResponseFormat.Type.GRAMMAR).setGrammar(v.asText()).build();
        }
        if (!v.isArray() || v.isEmpty()) {
            throw OpenAiError.badRequest(param, "'" + param + "' must be a non-empty list of strings");
        }
        f.setType(ResponseFormat.Type.CHOICE);
        for (JsonNode c : v) {
            if (!c.isTextual()) {
                throw OpenAiError.badRequest(param, "'" + param + "' must be a non-empty list of strings");
            }
            f.addChoices(c.asText());
        }
        return f.build();
    }

    /** vLLM's add_special_tokens for text prompts: BOS first, by default. */
    private static boolean addSpecialTokens(JsonNode body) {
        return !present(body, "add_special_tokens") || bool(body, "add_special_tokens", "add_special_tokens");
    }

    /** chat_template_kwargs as the template's variables (all of them, as vLLM passes them): JSON text, or "" for none. */
    private static String templateKwargs(JsonNode body) {
        JsonNode kwargs = body.get("chat_template_kwargs");
        if (kwargs == null || kwargs.isNull()) {
            return "";
        }
        if (!kwargs.isObject()) {
            throw OpenAiError.badRequest("chat_template_kwargs", "'chat_template_kwargs' must be an object");
        }
        return kwargs.isEmpty() ? "" : kwargs.toString();
    }

    /** chat_template_kwargs' thinking switch (vLLM's enable_thinking, SGLang's thinking), or null. */
    private static Boolean thinking(JsonNode body) {
        JsonNode kwargs = body.get("chat_template_kwargs");
        if (kwargs == null || kwargs.isNull()) {
            return null;
        }
        if (!kwargs.isObject()) {
            throw OpenAiError.badRequest("chat_template_kwargs", "'chat_template_kwargs' must be an object");
        }
        Boolean thinking = null;
        for (String name : new String[] {"enable_thinking", "thinking"}) {
            if (present(kwargs, name)) {
                thinking = bool(kwargs, name, "chat_template_kwargs." + name);
            }
        }
        return thinking;
    }

    private static int tokenId(JsonNode id, String param) {
        if (!id.isIntegralNumber() || id.asLong() < 0 || id.asLong() > Integer.MAX_VALUE) {
            throw OpenAiError.badRequest(param, "token id " + id + " is out of range");
        }
        return (int) id.asLong();
    }

    /** vLLM's {@code /tokenize}: {@code prompt} text, or chat {@code messages} (with the generation prompt by default). */
    static TokenizeRequest tokenize(JsonNode body) {
        TokenizeRequest.Builder r = TokenizeRequest.newBuilder();
        if (present(body, "return_token_strs")) { // answered from TokenizeResponse.token_strings
            bool(body, "return_token_strs", "return_token_strs");
        }
        if (present(body, "messages")) {
            boolean continued = present(body, "continue_final_message")
                    && bool(body, "continue_final_message", "continue_final_message");
            // As vLLM's: the generation prompt by default, none when continuing the last message.
            r.setChat(messages(body)).addAllTools(tools(body)).setContinueFinalMessage(continued).setAddGenerationPrompt(
                    present(body, "add_generation_prompt") ? bool(body, "add_generation_prompt", "add_generation_prompt")
                            : !continued);
            Boolean thinking = thinking(body);
            if (thinking != null) {
                r.setEnableThinking(thinking);
            }
            if (present(body, "chat_template")) {
                r.setChatTemplate(text(body, "chat_template", "chat_template"));
            }
            r.setChatTemplateKwargs(templateKwargs(body));
        } else {
            r.setText(text(body, "prompt", "prompt")).setAddSpecialTokens(addSpecialTokens(body));
        }
        return r.build();
    }

    /** vLLM's {@code /detokenize}: {@code tokens}, a list of ids. */
    static DetokenizeRequest detokenize(JsonNode body) {
        JsonNode tokens = body.get("tokens");
        if (tokens == null || !tokens.isArray() || !allInts(tokens)) {
            throw OpenAiError.badRequest("tokens", "'tokens' must be an array of token ids");
        }
        DetokenizeRequest.Builder r = DetokenizeRequest.newBuilder();
        for (JsonNode id : tokens) {
            r.addTokenIds(tokenId(id, "tokens"));
        }
        return r.build();
    }

    /** {@code each}: the requests of several prompts (null: just r's). */
    private static Parsed finish(List<GenerateRequest> each, GenerateRequest.Builder r, JsonNode body, boolean logprobs,
            boolean echo, boolean promptOnly, boolean oneToolCall) {
        String model = present(body, "model") ? text(body, "model", "model") : null;
        boolean stream = present(body, "stream") && bool(body, "stream", "stream");
        if (present(body, "stream_options") && !stream) {
            throw OpenAiError.badRequest("stream_options", "'stream_options' is only allowed when 'stream' is true");
        }
        if (present(body, "stream_options") && !body.get("stream_options").isObject()) {
            throw OpenAiError.badRequest("stream_options", "'stream_options' must be an object");
        }
        JsonNode options = body.get("stream_options");
        boolean usage = options != null && options.isObject() && present(options, "include_usage")
                && bool(options, "include_usage", "stream_options.include_usage");
        // vLLM's continuous_usage_stats: with include_usage, every chunk carries its choice's usage so far.
        boolean continuous = usage && present(options, "continuous_usage_stats")
                && bool(options, "continuous_usage_stats", "stream_options.continuous_usage_stats");
        List<GenerateRequest> requests = each != null ? each : List.of(r.build());
        if (continuous) {
            requests = requests.stream().map(q -> q.toBuilder().setContinuousUsage(true).build()).toList();
        }
        if (present(body, "priority")) { // vLLM's: the scheduling priority, lower first
            int priority = integer(body, "priority");
            requests = requests.stream().map(q -> q.toBuilder().setPriority(priority).build()).toList();
        }
        if (body.has("request_id") && body.get("request_id").isTextual()) {
            String id = body.get("request_id").asText();
            requests = requests.stream().map(q -> q.toBuilder().setRequestId(id).build()).toList();
        }
        boolean promptLogprobs = present(body, "prompt_logprobs");
        if (promptLogprobs) {
            int top = promptLogprobs(body, stream, echo && logprobs);
            requests = requests.stream().map(q -> q.toBuilder().setSampling(q.getSampling().toBuilder()
                    .setPromptLogprobs(top)).build()).toList();
        }
        // vLLM's return_tokens_as_token_ids: logprobs name each token "token_id:N", which any token's bytes survive.
        boolean tokensAsIds = present(body, "return_tokens_as_token_ids")
                && bool(body, "return_tokens_as_token_ids", "return_tokens_as_token_ids");
        return new Parsed(requests, model, stream, usage, logprobs, echo, promptOnly, oneToolCall, promptLogprobs,
                tokensAsIds, null);
    }

    /**
     * vLLM's {@code prompt_logprobs} N: each prompt token's logprob, rank and N most likely alternatives,
     * in the answer. As in vLLM, not with streaming; nor with a completion's echo and logprobs, which
     * carry the prompt's logprobs already (in the legacy shape).
     */
    private static int promptLogprobs(JsonNode body, boolean stream, boolean echoed) {
        int top = integer(body, "prompt_logprobs");
        if (top < 0 || top > dev.epic.text.sampling.Logprobs.MAX_TOP) {
            throw OpenAiError.badRequest("prompt_logprobs", "'prompt_logprobs' must be in [0, "
                    + dev.epic.text.sampling.Logprobs.MAX_TOP + "], got " + top);
        }
        if (stream) {
            throw OpenAiError.badRequest("prompt_logprobs", "'prompt_logprobs' is not available with 'stream': true");
        }
        if (echoed) {
            throw OpenAiError.badRequest("prompt_logprobs", "'prompt_logprobs' with 'echo' and 'logprobs': the echoed "
                    + "prompt carries its logprobs already; ask for one of them");
        }
        return top;
    }

    /** The sampling fields common to both endpoints. */
    private static SamplingParams.Builder sampling(JsonNode b) {
        SamplingParams.Builder s = SamplingParams.newBuilder();
        if (present(b, "temperature")) s.setTemperature(number(b, "temperature"));
        if (present(b, "top_p")) s.setTopP(number(b, "top_p"));
        if (present(b, "top_k")) s.setTopK(integer(b, "top_k"));
        if (present(b, "min_p")) s.setMinP(number(b, "min_p"));
        if (present(b, "seed")) s.setSeed(seed(b));
        if (present(b, "presence_penalty")) s.setPresencePenalty(number(b, "presence_penalty"));
        if (present(b, "frequency_penalty")) s.setFrequencyPenalty(number(b, "frequency_penalty"));
        if (present(b, "repetition_penalty")) s.setRepetitionPenalty(number(b, "repetition_penalty"));
        if (present(b, "max_tokens")) s.setMaxTokens(count(b, "max_tokens"));
        if (present(b, "min_tokens")) s.setMinTokens(count(b, "min_tokens"));
        if (present(b, "n")) s.setN(count(b, "n"));
        if (present(b, "ignore_eos")) s.setIgnoreEos(bool(b, "ignore_eos", "ignore_eos"));
        if (present(b, "skip_special_tokens")) {
            s.setSkipSpecialTokens(bool(b, "skip_special_tokens", "skip_special_tokens"));
        }
        if (present(b, "include_stop_str_in_output")) {
            s.setIncludeStopStrInOutput(bool(b, "include_stop_str_in_output", "include_stop_str_in_output"));
        }
        JsonNode stop = b.get("stop");
        if (stop != null && !stop.isNull()) {
            if (stop.isTextual()) {
                s.addStop(stop.asText());
            } else if (stop.isArray()) {
                for (JsonNode x : stop) {
                    if (!x.isTextual()) {
                        throw OpenAiError.badRequest("stop", "'stop' must be a string or an array of strings");
                    }
                    s.addStop(x.asText());
                }
            } else {
                throw OpenAiError.badRequest("stop", "'stop' must be a string or an array of strings");
            }
        }
        JsonNode ids = b.get("stop_token_ids");
        if (ids != null && !ids.isNull()) {
            if (!ids.isArray() || !allInts(ids)) {
                throw OpenAiError.badRequest("stop_token_ids", "'stop_token_ids' must be an array of token ids");
            }
            for (JsonNode id : ids) {
                s.addStopTokenIds(tokenId(id, "stop_token_ids"));
            }
        }
        JsonNode allowed = b.get("allowed_token_ids"); // vLLM's: the only tokens that may be chosen
        if (allowed != null && !allowed.isNull()) {
            if (!allowed.isArray() || !allInts(allowed) || allowed.isEmpty()) {
                throw OpenAiError.badRequest("allowed_token_ids", "'allowed_token_ids' must be a non-empty array of "
                        + "token ids");
            }
            for (JsonNode id : allowed) {
                s.addAllowedTokenIds(tokenId(id, "allowed_token_ids"));
            }
        }
        JsonNode bias = b.get("logit_bias");
        if (bias != null && !bias.isNull()) {
            if (!bias.isObject()) {
                throw OpenAiError.badRequest("logit_bias", "'logit_bias' must map token ids to biases");
            }
            for (java.util.Iterator<java.util.Map.Entry<String, JsonNode>> it = bias.fields(); it.hasNext(); ) {
                java.util.Map.Entry<String, JsonNode> e = it.next();
                if (!e.getKey().matches("\\d{1,10}") || Long.parseLong(e.getKey()) > Integer.MAX_VALUE
                        || !e.getValue().isNumber()) {
                    throw OpenAiError.badRequest("logit_bias", "'logit_bias' must map token ids to biases, got "
                            + e.getKey() + ": " + e.getValue());
                }
                s.putLogitBias(Integer.parseInt(e.getKey()), e.getValue().floatValue());
            }
        }
        return s;
    }

    private static Messages messages(JsonNode body) {
        JsonNode messages = body.get("messages");
        if (messages == null || !messages.isArray() || messages.isEmpty()) {
            throw OpenAiError.badRequest("messages", "'messages' must be a non-empty array");
        }
        Messages.Builder m = Messages.newBuilder();
        for (int i = 0; i < messages.size(); i++) {
            m.addMessages(message(messages.get(i), "messages[" + i + "]"));
        }
        return m.build();
    }

    private static List<Tool> tools(JsonNode body) {
        JsonNode tools = body.get("tools");
        if (tools == null || tools.isNull()) {
            return List.of();
        }
        if (!tools.isArray()) {
            throw OpenAiError.badRequest("tools", "'tools' must be an array");
        }
        List<Tool> out = new ArrayList<>(tools.size());
        for (int i = 0; i < tools.size(); i++) {
            out.add(tool(tools.get(i), "tools[" + i + "]"));
        }
        return out;
    }

    private static ChatMessage message(JsonNode n, String where) {
        if (n == null || !n.isObject()) {
            throw OpenAiError.badRequest(where, where + " must be an object");
        }
        String role = text(n, "role", where + ".role");
        if (!ROLES.contains(role)) {
            throw OpenAiError.badRequest(where + ".role", where + ".role must be one of " + ROLES + ", got '" + role + "'");
        }
        ChatMessage.Builder m = ChatMessage.newBuilder().setRole(role.equals("developer") ? "system" : role)
                .setContent(content(n.get("content"), where + ".content"));
        JsonNode calls = n.get("tool_calls");
        if (calls != null && !calls.isNull()) {
            if (!calls.isArray()) {
                throw OpenAiError.badRequest(where + ".tool_calls", where + ".tool_calls must be an array");
            }
            for (int i = 0; i < calls.size(); i++) {
                m.addToolCalls(toolCall(calls.get(i), where + ".tool_calls[" + i + "]"));
            }
        }
        if (present(n, "tool_call_id")) {
            m.setToolCallId(text(n, "tool_call_id", where + ".tool_call_id"));
        }
        if (present(n, "reasoning_content")) {
            m.setReasoning(text(n, "reasoning_content", where + ".reasoning_content"));
        }
        return m.build(); // DeepSeek's "prefix": see prefill
    }

    /** A string, null, or an array of text parts (other part types need a model that sees them). */
    private static String content(JsonNode c, String where) {
        if (c == null || c.isNull()) {
            return "";
        }
        if (c.isTextual()) {
            return c.asText();
        }
        if (!c.isArray()) {
            throw OpenAiError.badRequest(where, where + " must be a string or an array of content parts");
        }
        // Parts are joined with a newline, as vLLM joins them (chat_utils), so the prompt is the one it renders.
        StringJoiner sb = new StringJoiner("\n");
        for (JsonNode part : c) {
            String type = part.path("type").asText();
            if (type.equals("text") && !part.path("text").isTextual()) {
                throw OpenAiError.badRequest(where, "a text content part needs its 'text' as a string");
            }
            if (!type.equals("text")) {
                throw OpenAiError.badRequest(where, "only text content parts are supported, got type '" + type + "'");
            }
            sb.add(part.get("text").asText());
        }
        return sb.toString();
    }

    private static ToolCall toolCall(JsonNode n, String where) {
        JsonNode f = n == null ? null : n.get("function");
        if (f == null || !f.isObject()) {
            throw OpenAiError.badRequest(where, where + " needs a 'function' object");
        }
        JsonNode args = f.get("arguments");
        // OpenAI sends the arguments as JSON text; some clients send the object itself.
        String arguments = args == null || args.isNull() ? "{}" : args.isTextual() ? args.asText() : args.toString();
        return ToolCall.newBuilder().setId(n.path("id").asText("")).setName(text(f, "name", where + ".function.name"))
                .setArguments(arguments).build();
    }

    private static Tool tool(JsonNode n, String where) {
        if (n == null || !n.isObject() || !"function".equals(n.path("type").asText("function"))) {
            throw OpenAiError.badRequest(where, where + " must be {\"type\": \"function\", \"function\": {...}}");
        }
        JsonNode f = n.get("function");
        if (f == null || !f.isObject()) {
            throw OpenAiError.badRequest(where, where + " needs a 'function' object");
        }
        Tool.Builder t = Tool.newBuilder().setName(text(f, "name", where + ".function.name"));
        if (present(f, "description")) {
            t.setDescription(text(f, "description", where + ".function.description"));
        }
        JsonNode p = f.get("parameters");
        if (p != null && !p.isNull()) {
            t.setParametersJsonSchema(p.toString());
        }
        return t.build();
    }

    /**
     * tool_choice: "auto" (the default), "none", "required" or {"type": "function", "function":
     * {"name": N}}; with "required", parallel_tool_calls false asks for one call. A model left to
     * choose ("auto") cannot be held to one call: its answer keeps the first (Parsed.oneToolCall).
     */
    private static ToolChoice toolChoice(JsonNode body) {
        JsonNode c = body.get("tool_choice");
        boolean parallel = !present(body, "parallel_tool_calls") || bool(body, "parallel_tool_calls", "parallel_tool_calls");
        ToolChoice.Builder t = ToolChoice.newBuilder();
        if (c == null || c.isNull() || c.isTextual() && c.asText().equals("auto")) {
            t.setMode(ToolChoice.Mode.AUTO);
        } else if (c.isTextual() && c.asText().equals("none")) {
            t.setMode(ToolChoice.Mode.NONE);
        } else if (c.isTextual() && c.asText().equals("required")) {
            t.setMode(ToolChoice.Mode.REQUIRED).setSingleCall(!parallel);
        } else if (c.isObject() && "function".equals(c.path("type").asText()) && c.path("function").path("name").isTextual()) {
            t.setMode(ToolChoice.Mode.FUNCTION).setFunctionName(c.path("function").path("name").asText());
        } else {
            throw OpenAiError.badRequest("tool_choice", "tool_choice must be 'auto', 'none', 'required' or "
                    + "{\"type\": \"function\", \"function\": {\"name\": ...}}");
        }
        boolean forced = t.getMode() == ToolChoice.Mode.REQUIRED || t.getMode() == ToolChoice.Mode.FUNCTION;
        if (forced && body.path("tools").isEmpty()) {
            throw OpenAiError.badRequest("tool_choice", "tool_choice " + c + " needs 'tools'");
        }
        return t.build();
    }

    private static boolean present(JsonNode n, String name) {
        return n.has(name) && !n.get(name).isNull();
    }

    private static boolean allInts(JsonNode array) {
        for (JsonNode x : array) {
            if (!x.isIntegralNumber()) {
                return false;
            }
        }
        return true;
    }

    private static String text(JsonNode n, String name, String where) {
        JsonNode v = n.get(name);
        if (v == null || !v.isTextual()) {
            throw OpenAiError.badRequest(where, "'" + where + "' must be a string");
        }
        return v.asText();
    }

    /** A present (non-null) boolean field. */
    private static boolean bool(JsonNode n, String name, String where) {
        JsonNode v = n.get(name);
        if (!v.isBoolean()) {
            throw OpenAiError.badRequest(where, "'" + where + "' must be true or false");
        }
        return v.asBoolean();
    }

    private static float number(JsonNode n, String name) {
        JsonNode v = n.get(name);
        if (!v.isNumber()) {
            throw OpenAiError.badRequest(name, "'" + name + "' must be a number");
        }
        return v.floatValue();
    }

    /** Whole numbers written as floats (2.0) count, as pydantic takes them for vLLM. */
    private static boolean whole(JsonNode v) {
        return v.isIntegralNumber() || v.isFloatingPointNumber() && v.canConvertToExactIntegral();
    }

    private static int integer(JsonNode n, String name) {
        JsonNode v = n.get(name);
        if (!whole(v)) {
            throw OpenAiError.badRequest(name, "'" + name + "' must be an integer");
        }
        if (!v.canConvertToInt()) { // a whole number, just too large for any count or id here
            throw OpenAiError.badRequest(name, "'" + name + "' is out of range: " + v.asText() + " (at most "
                    + Integer.MAX_VALUE + ")");
        }
        return v.intValue();
    }

    /** Any 64-bit integer: a negative seed is as good as a positive one. */
    private static long seed(JsonNode n) {
        JsonNode v = n.get("seed");
        if (!whole(v) || !v.canConvertToLong()) {
            throw OpenAiError.badRequest("seed", "'seed' must be an integer");
        }
        return v.longValue();
    }

    /** A non-negative integer (a token count, n, logprobs). */
    private static int count(JsonNode n, String name) {
        int v = integer(n, name);
        if (v < 0) {
            throw OpenAiError.badRequest(name, "'" + name + "' must be >= 0, got " + v);
        }
        return v;
    }
}
