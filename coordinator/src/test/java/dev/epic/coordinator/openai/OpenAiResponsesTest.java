package dev.epic.coordinator.openai;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateResponse;
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

    @Test
    void aCompletionHasNoToolCallsFinishReason() {
        OpenAiResponses r = new OpenAiResponses(OpenAiResponses.Kind.TEXT, "m", 1, false, false, false, 1);
        toolAnswer().forEach(r::accept);
        assertEquals("stop", r.complete().get("choices").get(0).get("finish_reason").asText());
    }
}
