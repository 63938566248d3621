package dev.epic.coordinator.openai;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.protobuf.ByteString;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.TokenLogprob;
import dev.epic.proto.ToolCall;
import dev.epic.proto.Usage;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * A reasoning-then-tool-call answer (what R1 sends when it calls a tool) in OpenAI's shapes. The
 * random-weight test models never call tools, so the stream is written out here.
 */
class OpenAiResponsesTest {
    private static List<GenerateResponse> toolAnswer() {
        return List.of(
                GenerateResponse.newBuilder().setRequestId("r1").addTokenIds(5).setReasoningText("Need the ").build(),
                GenerateResponse.newBuilder().setRequestId("r1").addTokenIds(6).setReasoningText("weather.").build(),
                GenerateResponse.newBuilder().setRequestId("r1").addTokenIds(7)
                        .addToolCalls(ToolCall.newBuilder().setId("call_0").setName("get_weather").setArguments("{\"city\":\"Paris\"}"))
                        .addToolCalls(ToolCall.newBuilder().setId("call_1").setName("get_time").setArguments("{}"))
                        .setFinishReason(FinishReason.TOOL_CALLS)
                        .setUsage(Usage.newBuilder().setPromptTokens(20).setCompletionTokens(3).setReasoningTokens(2))
                        .build());
    }

    @Test
    void aToolCallAnswerAsOneChatCompletion() {
        OpenAiResponses r = new OpenAiResponses(OpenAiResponses.Kind.CHAT, "m", 1, false, false, false, 1);
        toolAnswer().forEach(r::accept);
        ObjectNode o = r.complete();
        assertEquals("chatcmpl-r1", o.get("id").asText());
        JsonNode choice = o.get("choices").get(0);
        JsonNode message = choice.get("message");
        assertTrue(message.get("content").isNull(), "content is null when the answer is only tool calls");
        assertEquals("Need the weather.", message.get("reasoning_content").asText());
        assertEquals(2, message.get("tool_calls").size());
        JsonNode call = message.get("tool_calls").get(0);
        assertEquals("call_0", call.get("id").asText());
        assertEquals("function", call.get("type").asText());
        assertEquals("get_weather", call.get("function").get("name").asText());
        assertEquals("{\"city\":\"Paris\"}", call.get("function").get("arguments").asText());
        assertEquals("tool_calls", choice.get("finish_reason").asText());
        assertEquals(23, o.get("usage").get("total_tokens").asInt());
        assertEquals(2, o.get("usage").get("completion_tokens_details").get("reasoning_tokens").asInt());
    }

    @Test
    void aToolCallAnswerAsChunks() {
        OpenAiResponses r = new OpenAiResponses(OpenAiResponses.Kind.CHAT, "m", 1, false, true, false, 1);
        List<ObjectNode> chunks = new ArrayList<>();
        toolAnswer().forEach(m -> chunks.addAll(r.accept(m)));
        assertEquals(4, chunks.size()); // role, two reasoning deltas, the calls with the finish reason
        assertEquals("assistant", chunks.get(0).get("choices").get(0).get("delta").get("role").asText());
        assertEquals("Need the ", chunks.get(1).get("choices").get(0).get("delta").get("reasoning_content").asText());
        JsonNode last = chunks.get(3).get("choices").get(0);
        assertEquals("tool_calls", last.get("finish_reason").asText());
        JsonNode calls = last.get("delta").get("tool_calls");
        assertEquals(0, calls.get(0).get("index").asInt());
        assertEquals(1, calls.get(1).get("index").asInt());
        assertEquals("get_time", calls.get(1).get("function").get("name").asText());
        assertTrue(chunks.get(3).get("usage").isNull());
        assertEquals(23, r.usageChunk().get("usage").get("total_tokens").asInt());
    }

    /** parallel_tool_calls false: only the first call is kept, whole or streamed, in one message or several. */
    @Test
    void oneToolCallKeepsTheFirst() {
        OpenAiResponses whole = new OpenAiResponses(OpenAiResponses.Kind.CHAT, "m", 1, false, false, false, 1)
                .oneToolCall(true);
        toolAnswer().forEach(whole::accept);
        JsonNode choice = whole.complete().get("choices").get(0);
        assertEquals(1, choice.get("message").get("tool_calls").size());
        assertEquals("call_0", choice.get("message").get("tool_calls").get(0).get("id").asText());
        assertEquals("tool_calls", choice.get("finish_reason").asText());

        OpenAiResponses streamed = new OpenAiResponses(OpenAiResponses.Kind.CHAT, "m", 1, false, false, false, 1)
                .oneToolCall(true);
        List<GenerateResponse> split = new ArrayList<>(toolAnswer().subList(0, 2));
        split.add(GenerateResponse.newBuilder().setRequestId("r1")
                .addToolCalls(ToolCall.newBuilder().setId("call_0").setName("get_weather").setArguments("{}")).build());
        split.add(GenerateResponse.newBuilder().setRequestId("r1")
                .addToolCalls(ToolCall.newBuilder().setId("call_1").setName("get_time").setArguments("{}"))
                .setFinishReason(FinishReason.TOOL_CALLS).build());
        List<ObjectNode> chunks = new ArrayList<>();
        split.forEach(m -> chunks.addAll(streamed.accept(m)));
        List<String> ids = new ArrayList<>();
        chunks.forEach(ch -> ch.get("choices").get(0).path("delta").path("tool_calls")
                .forEach(t -> ids.add(t.get("id").asText() + "@" + t.get("index").asInt())));
        assertEquals(List.of("call_0@0"), ids);
        assertEquals("tool_calls", chunks.getLast().get("choices").get(0).get("finish_reason").asText());
        assertEquals(1, streamed.complete().get("choices").get(0).get("message").get("tool_calls").size());
    }

    /** A completion's text_offset counts code points, as vLLM (Python) does: an emoji is one, not two. */
    @Test
    void textOffsetsCountCodePoints() {
        OpenAiResponses r = new OpenAiResponses(OpenAiResponses.Kind.TEXT, "m", 1, true, false, false, 1);
        GenerateResponse.Builder m = GenerateResponse.newBuilder().setRequestId("r1").setText("\uD83D\uDE00ab")
                .setFinishReason(FinishReason.LENGTH);
        for (String t : List.of("\uD83D\uDE00", "a", "b")) {
            m.addLogprobs(TokenLogprob.newBuilder().setToken(ByteString.copyFromUtf8(t)).setLogprob(-1f));
        }
        r.accept(m.build());
        JsonNode offsets = r.complete().get("choices").get(0).get("logprobs").get("text_offset");
        assertEquals("[0,1,2]", offsets.toString());
    }

    @Test
    void aCompletionHasNoToolCallsFinishReason() {
        OpenAiResponses r = new OpenAiResponses(OpenAiResponses.Kind.TEXT, "m", 1, false, false, false, 1);
        toolAnswer().forEach(r::accept);
        assertEquals("stop", r.complete().get("choices").get(0).get("finish_reason").asText());
    }
}
