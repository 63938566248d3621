package dev.epic.coordinator.openai;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.proto.ChatMessage;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.Messages;
import dev.epic.proto.ResponseFormat;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.Tool;
import dev.epic.proto.ToolCall;
import dev.epic.proto.ToolChoice;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;

/** OpenAI request bodies to GenerateRequests, field by field. */
class OpenAiRequestsTest {
    private static OpenAiRequests.Parsed chat(String json) {
        return OpenAiRequests.chat(OpenAiRequests.parse(json.getBytes(StandardCharsets.UTF_8)));
    }

    @Test
    void aToolConversationMapsOntoTheChatMessages() {
        OpenAiRequests.Parsed p = chat("""
                {"model": "m", "stream": true, "stream_options": {"include_usage": true},
                 "messages": [
                   {"role": "developer", "content": [{"type": "text", "text": "Use "}, {"type": "text", "text": "tools."}]},
                   {"role": "user", "content": "Weather in Paris?"},
                   {"role": "assistant", "content": null, "reasoning_content": "Call it.",
                    "tool_calls": [{"id": "call_1", "type": "function",
                                    "function": {"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}}]},
                   {"role": "tool", "tool_call_id": "call_1", "content": "18C"}],
                 "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
                 "chat_template_kwargs": {"enable_thinking": false},
                 "temperature": 0.5, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "seed": -3, "max_completion_tokens": 50,
                 "stop": "END", "stop_token_ids": [7], "n": 2, "presence_penalty": 0.1, "frequency_penalty": 0.2,
                 "repetition_penalty": 1.1, "min_tokens": 2, "ignore_eos": true, "include_stop_str_in_output": true,
                 "logprobs": true, "top_logprobs": 3, "user": "ignored"}
                """);
        GenerateRequest expected = GenerateRequest.newBuilder()
                .setChat(Messages.newBuilder()
                        .addMessages(ChatMessage.newBuilder().setRole("system").setContent("Use \ntools.")) // vLLM's join
                        .addMessages(ChatMessage.newBuilder().setRole("user").setContent("Weather in Paris?"))
                        .addMessages(ChatMessage.newBuilder().setRole("assistant").setReasoning("Call it.")
                                .addToolCalls(ToolCall.newBuilder().setId("call_1").setName("get_weather")
                                        .setArguments("{\"city\": \"Paris\"}")))
                        .addMessages(ChatMessage.newBuilder().setRole("tool").setToolCallId("call_1").setContent("18C")))
                .addTools(Tool.newBuilder().setName("get_weather").setDescription("Weather now")
                        .setParametersJsonSchema("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"))
                .setEnableThinking(false)
                .setChatTemplateKwargs("{\"enable_thinking\":false}") // the template's variables too, as vLLM's
                .setSampling(SamplingParams.newBuilder().setTemperature(0.5f).setTopP(0.9f).setTopK(40).setMinP(0.05f)
                        .setSeed(-3).setMaxTokens(50).addStop("END").addStopTokenIds(7).setN(2).setPresencePenalty(0.1f)
                        .setFrequencyPenalty(0.2f).setRepetitionPenalty(1.1f).setMinTokens(2).setIgnoreEos(true)
                        .setIncludeStopStrInOutput(true).setLogprobs(3))
                .build();
        assertEquals(expected, p.request());
        assertEquals("m", p.model());
        assertTrue(p.stream());
        assertTrue(p.includeUsage());
        assertTrue(p.logprobs());
    }

    @Test
    void toolChoiceNoneIsPassedOn() {
        OpenAiRequests.Parsed p = chat("""
                {"messages": [{"role": "user", "content": "hi"}], "tool_choice": "none",
                 "tools": [{"type": "function", "function": {"name": "f"}}]}""");
        assertEquals(ToolChoice.newBuilder().setMode(ToolChoice.Mode.NONE).build(), p.request().getToolChoice());
        assertEquals(SamplingParams.getDefaultInstance(), p.request().getSampling());
    }

    @Test
    void forcedToolChoicesMapAndStartWithoutThinking() {
        String tools = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\"}}]";
        OpenAiRequests.Parsed p = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], " + tools
                + ", \"tool_choice\": \"required\", \"parallel_tool_calls\": false}");
        assertEquals(ToolChoice.newBuilder().setMode(ToolChoice.Mode.REQUIRED).setSingleCall(true).build(),
                p.request().getToolChoice());
        assertFalse(p.request().hasEnableThinking(), "the coordinator's default: no thinking for constrained answers");
        p = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], " + tools
                + ", \"tool_choice\": {\"type\": \"function\", \"function\": {\"name\": \"f\"}}, "
                + "\"chat_template_kwargs\": {\"enable_thinking\": true}}");
        assertEquals(ToolChoice.newBuilder().setMode(ToolChoice.Mode.FUNCTION).setFunctionName("f").build(),
                p.request().getToolChoice());
        assertTrue(p.request().getEnableThinking(), "the client may still ask for a thinking block");
        for (String bad : List.of("\"tool_choice\": \"always\"", "\"tool_choice\": {\"type\": \"function\"}",
                "\"tool_choice\": \"required\"")) {
            OpenAiError e = assertThrows(OpenAiError.class,
                    () -> chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], " + bad + "}"), bad);
            assertEquals("tool_choice", e.param);
        }
        // "auto" with parallel_tool_calls false: no constraint, the answer keeps its first call.
        OpenAiRequests.Parsed auto = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], " + tools
                + ", \"parallel_tool_calls\": false}");
        assertTrue(auto.oneToolCall());
        assertFalse(auto.request().hasToolChoice());
    }

    /** vLLM's scheduling priority goes with the request. */
    @Test
    void priorityIsPassedOn() {
        assertEquals(-3, chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"priority\": -3}")
                .request().getPriority());
        assertEquals(0, chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}").request().getPriority());
        OpenAiError e = assertThrows(OpenAiError.class,
                () -> chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"priority\": \"high\"}"));
        assertEquals("priority", e.param);
    }

    @Test
    void malformedFieldsAreRefusedByName() {
        OpenAiError e = assertThrows(OpenAiError.class,
                () -> chat("{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}"));
        assertEquals("messages[0].content", e.param);
        e = assertThrows(OpenAiError.class, () -> chat("{\"messages\": [{\"role\": \"user\"}], \"max_tokens\": -1}"));
        assertEquals("max_tokens", e.param);
        e = assertThrows(OpenAiError.class, () -> chat("{\"messages\": [{\"role\": \"user\"}], \"max_tokens\": 1.5}"));
        assertEquals("'max_tokens' must be an integer", e.getMessage());
        e = assertThrows(OpenAiError.class,
                () -> chat("{\"messages\": [{\"role\": \"user\"}], \"max_tokens\": 99999999999}"));
        assertEquals("max_tokens", e.param);
        assertEquals("'max_tokens' is out of range: 99999999999 (at most 2147483647)", e.getMessage());
        e = assertThrows(OpenAiError.class, () -> chat("{\"messages\": [{\"role\": \"user\"}], \"stop\": [1]}"));
        assertEquals("stop", e.param);
        e = assertThrows(OpenAiError.class, () -> chat("[1, 2]"));
        assertEquals(400, e.httpStatus);
        e = assertThrows(OpenAiError.class,
                () -> chat("{\"messages\": [{\"role\": \"user\"}], \"chat_template_kwargs\": {\"enable_thinking\": 1}}"));
        assertEquals("chat_template_kwargs.enable_thinking", e.param);
    }

    /** Fields that would change the answer are refused by name; their defaults pass. */
    @Test
    void unsupportedFieldsAreRefusedUnlessDefault() {
        String base = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], ";
        for (String field : new String[] {"\"logit_bias\": {\"x\": 10}", "\"guided_grammar\": 7", "\"best_of\": 3",
                "\"response_format\": {\"type\": \"json_schema\"}",
                "\"functions\": []"}) {
            OpenAiError e = assertThrows(OpenAiError.class, () -> chat(base + field + "}"), field);
            assertEquals(field.substring(1, field.indexOf('"', 1)), e.param);
        }
        chat(base + "\"logit_bias\": {}, \"best_of\": 2, \"n\": 2, \"parallel_tool_calls\": true, "
                + "\"response_format\": {\"type\": \"text\"}, \"chat_template_kwargs\": {\"enable_thinking\": null}}");
    }

    /** vLLM's use_beam_search with its length_penalty; the beam width is n. */
    @Test
    void beamSearchAsksForBeamsOfWidthN() {
        String base = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], ";
        GenerateRequest r = chat(base + "\"use_beam_search\": true, \"n\": 3, \"length_penalty\": 0.5}").request();
        assertTrue(r.hasBeamSearch());
        assertEquals(0.5f, r.getBeamSearch().getLengthPenalty());
        assertEquals(3, r.getSampling().getN());
        assertFalse(chat(base + "\"use_beam_search\": true}").request().getBeamSearch().hasLengthPenalty());
        assertFalse(chat(base + "\"use_beam_search\": false, \"length_penalty\": 2}").request().hasBeamSearch());
        assertTrue(OpenAiRequests.completion(OpenAiRequests.parse("{\"prompt\": \"x\", \"use_beam_search\": true}"
                .getBytes(StandardCharsets.UTF_8)))
                .request().hasBeamSearch());
    }

    @Test
    void logitBiasMapsTokenIdsToBiases() {
        SamplingParams s = chat("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"logit_bias\": "
                + "{\"5\": 10, \"70000\": -100}}").request().getSampling();
        assertEquals(java.util.Map.of(5, 10f, 70000, -100f), s.getLogitBiasMap());
    }

    /** vLLM's guided decoding, old (guided_*) and new (structured_outputs), maps onto response formats. */
    @Test
    void guidedDecodingMapsOntoResponseFormats() {
        String base = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], ";
        ResponseFormat f = chat(base + "\"guided_choice\": [\"yes\", \"no\"]}").request().getResponseFormat();
        assertEquals(ResponseFormat.Type.CHOICE, f.getType());
        assertEquals(List.of("yes", "no"), f.getChoicesList());
        f = chat(base + "\"structured_outputs\": {\"regex\": \"\\\\d+\", \"disable_fallback\": true}}").request()
                .getResponseFormat();
        assertEquals(ResponseFormat.Type.REGEX, f.getType());
        assertEquals("\\d+", f.getRegex());
        f = chat(base + "\"guided_json\": {\"type\": \"integer\"}}").request().getResponseFormat();
        assertEquals(ResponseFormat.Type.JSON_SCHEMA, f.getType());
        assertEquals("{\"type\":\"integer\"}", f.getJsonSchema());
        f = chat(base + "\"structured_outputs\": {\"json\": \"{\\\"type\\\": \\\"string\\\"}\"}}").request()
                .getResponseFormat();
        assertEquals("{\"type\": \"string\"}", f.getJsonSchema());
        assertEquals(ResponseFormat.Type.JSON_OBJECT, chat(base + "\"structured_outputs\": {\"json_object\": true}}")
                .request().getResponseFormat().getType());
        f = chat(base + "\"guided_grammar\": \"root ::= [0-9]+\"}").request().getResponseFormat();
        assertEquals(ResponseFormat.Type.GRAMMAR, f.getType());
        assertEquals("root ::= [0-9]+", f.getGrammar());
        assertEquals("root ::= \"x\"", chat(base + "\"structured_outputs\": {\"grammar\": \"root ::= \\\"x\\\"\"}}")
                .request().getResponseFormat().getGrammar());
        assertEquals(ResponseFormat.Type.REGEX, chat(base + "\"guided_regex\": \"a\", \"guided_decoding_backend\": "
                + "\"xgrammar\"}").request().getResponseFormat().getType(), "a backend name alone changes nothing");
        for (String[] bad : new String[][] {{"\"guided_choice\": [\"a\"], \"guided_regex\": \"a\"", "guided_regex"},
                {"\"guided_choice\": [1]", "guided_choice"}, {"\"guided_regex\": \"a\", \"response_format\": {\"type\": "
                + "\"json_object\"}", "response_format"}, {"\"structured_outputs\": {\"grammar\": 7}",
                "structured_outputs.grammar"}, {"\"guided_grammar\": \"root ::= x\", \"guided_regex\": \"a\"", "guided_regex"}, {"\"structured_outputs\": {\"disable_any_whitespace\": true}",
                "structured_outputs.disable_any_whitespace"}, {"\"guided_choice\": [\"a\"], \"guided_whitespace_pattern\": "
                + "\" \"", "guided_whitespace_pattern"}, {"\"guided_regex\": \"a\", \"guided_decoding_backend\": "
                + "\"xgrammar:disable-any-whitespace\"", "guided_decoding_backend"}}) {
            OpenAiError e = assertThrows(OpenAiError.class, () -> chat(base + bad[0] + "}"), bad[0]);
            assertEquals(bad[1], e.param, bad[0]);
        }
    }

    @Test
    void completionsAreRawAndStartWithBosUnlessAskedNot() {
        OpenAiRequests.Parsed p = OpenAiRequests.completion(OpenAiRequests.parse(
                "{\"prompt\": \"x\", \"echo\": true, \"max_tokens\": 0, \"min_tokens\": 3, \"logprobs\": 2}"
                        .getBytes(StandardCharsets.UTF_8)));
        assertTrue(p.request().getRawOutput());
        assertTrue(p.request().getAddSpecialTokens());
        assertTrue(p.echo() && p.promptOnly());
        assertEquals(SamplingParams.newBuilder().setMaxTokens(1).setLogprobs(2).setPromptLogprobs(2).build(),
                p.request().getSampling(), "max_tokens 0 runs one step, with no min_tokens to conflict");
        p = OpenAiRequests.completion(OpenAiRequests.parse(
                "{\"prompt\": [1, 2], \"add_special_tokens\": false}".getBytes(StandardCharsets.UTF_8)));
        assertTrue(!p.request().getAddSpecialTokens() && !p.echo());
    }

    /** As vLLM: top_logprobs 0 without logprobs asks for nothing; whole numbers may be written as floats. */
    @Test
    void lenientWhereVllmIsLenient() {
        String base = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], ";
        assertFalse(chat(base + "\"logprobs\": false, \"top_logprobs\": 0}").request().getSampling().hasLogprobs());
        assertEquals("top_logprobs", assertThrows(OpenAiError.class,
                () -> chat(base + "\"top_logprobs\": 2}")).param);
        SamplingParams s = chat(base + "\"max_tokens\": 2.0, \"n\": 3.0, \"seed\": -7.0}").request().getSampling();
        assertEquals(2, s.getMaxTokens());
        assertEquals(3, s.getN());
        assertEquals(-7, s.getSeed());
        assertEquals("max_tokens", assertThrows(OpenAiError.class, () -> chat(base + "\"max_tokens\": 2.5}")).param);
        // Errors name the field the client sent: chat's top_logprobs and max_completion_tokens.
        assertEquals("top_logprobs", assertThrows(OpenAiError.class,
                () -> chat(base + "\"logprobs\": true, \"top_logprobs\": 25}")).param);
        assertEquals("max_completion_tokens", assertThrows(OpenAiError.class,
                () -> chat(base + "\"max_completion_tokens\": 0}")).param);
    }

    /** vLLM fields that would change the answer and that this server cannot honour are refused by name. */
    @Test
    void vllmOutputSwitchesItCannotHonourAreRefusedByName() {
        String base = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], ";
        assertEquals("{{ x }}", chat(base + "\"chat_template\": \"{{ x }}\"}").request().getChatTemplate(),
                "passed on: the coordinator takes it when trusted to");
        for (String[] bad : new String[][] {{"\"echo\": 2", "echo"}, {"\"chat_template\": [1]", "chat_template"},
                {"\"skip_special_tokens\": 0", "skip_special_tokens"}}) {
            assertEquals(bad[1], assertThrows(OpenAiError.class, () -> chat(base + bad[0] + "}"), bad[0]).param);
        }
        chat(base + "\"echo\": false, \"skip_special_tokens\": true, \"return_tokens_as_token_ids\": false}");
        dev.epic.proto.SamplingParams kept = chat(base + "\"skip_special_tokens\": false}").request().getSampling();
        assertTrue(kept.hasSkipSpecialTokens() && !kept.getSkipSpecialTokens(), "passed on");
        assertFalse(chat(base + "\"n\": 1}").request().getSampling().hasSkipSpecialTokens(), "the default is the server's");
    }
}
