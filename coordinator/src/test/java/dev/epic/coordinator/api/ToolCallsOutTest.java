package dev.epic.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateResponse;
import dev.epic.text.output.ToolCall;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Which of the model's tool calls reach the API, and the finish reason that goes with them. */
class ToolCallsOutTest {
    private static final ToolCall GOOD = new ToolCall(0, "call_0", "get_weather", "{\"city\": \"Paris\"}",
            ToolCall.Status.COMPLETE, null);
    private static final ToolCall BAD = new ToolCall(1, "call_1", "", "get_weather", ToolCall.Status.MALFORMED,
            "tool call has no separator");
    private static final ToolCall CUT = new ToolCall(2, "call_2", "f", "{\"city\": \"Pa", ToolCall.Status.INCOMPLETE,
            "cut");

    @Test
    void onlyWellFormedCallsGoOut() {
        GenerateResponse.Builder r = GenerateResponse.newBuilder();
        assertTrue(GenerationServiceImpl.addToolCalls(r, List.of(BAD, GOOD, CUT), "req"));
        assertEquals(1, r.getToolCallsCount());
        assertEquals("get_weather", r.getToolCalls(0).getName());
        assertEquals("{\"city\": \"Paris\"}", r.getToolCalls(0).getArguments());
    }

    @Test
    void aMalformedCallAloneEndsAsStop() {
        GenerateResponse.Builder r = GenerateResponse.newBuilder();
        assertFalse(GenerationServiceImpl.addToolCalls(r, List.of(BAD, CUT), "req"));
        assertEquals(0, r.getToolCallsCount());
        assertEquals(FinishReason.STOP,
                GenerationServiceImpl.finishReason(dev.epic.text.generate.FinishReason.TOOL_CALLS, false));
        assertEquals(FinishReason.TOOL_CALLS,
                GenerationServiceImpl.finishReason(dev.epic.text.generate.FinishReason.TOOL_CALLS, true));
        assertEquals(FinishReason.LENGTH,
                GenerationServiceImpl.finishReason(dev.epic.text.generate.FinishReason.LENGTH, false));
    }
}
