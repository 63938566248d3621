package dev.epic.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.coordinator.ServedModel;
import dev.epic.model.TestData;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.Tool;
import java.util.List;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The tool definitions reach the prompt even when the chat template does not render them. */
class PromptBuilderTest {
    private static ServedModel model;
    private static PromptBuilder prompts;
    private static final Tool WEATHER = Tool.newBuilder().setName("get_weather").setDescription("Weather now in a city")
            .setParametersJsonSchema("{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}}}").build();

    @BeforeAll
    static void open() {
        model = ServedModel.open(TestData.model("tiny-v3"), null, 4096);
        prompts = new PromptBuilder(model);
    }

    private static ChatMessage msg(String role, String content) {
        return ChatMessage.newBuilder().setRole(role).setContent(content).build();
    }

    @Test
    void deepSeeksTemplateGetsTheToolsInItsSystemPrompt() {
        assertFalse(model.chatTemplate().template().contains("tools"), "the shipped template does not render tools");
        String text = prompts.render(List.of(msg("user", "Weather in Paris?")), List.of(WEATHER), true, PromptBuilder.Thinking.AS_TEMPLATE);
        int tools = text.indexOf("## Tools");
        assertTrue(tools > 0 && tools < text.indexOf("Weather in Paris?"), text);
        assertTrue(text.contains("`get_weather`") && text.contains("Weather now in a city")
                && text.contains("\"city\":{\"type\":\"string\"}"), text);
        assertTrue(text.contains("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>FUNCTION_NAME\n```json\n"), text);

        String withSystem = prompts.render(List.of(msg("system", "Be brief."), msg("user", "Weather in Paris?")),
                List.of(WEATHER), true, PromptBuilder.Thinking.AS_TEMPLATE);
        assertTrue(withSystem.contains("Be brief.\n\n## Tools"), withSystem);
        assertEquals(1, withSystem.split("## Tools", -1).length - 1, "one tools section");
    }

    /**
     * Continuing the last message (vLLM's continue_final_message, as Hugging Face cuts the rendered chat):
     * the prompt is the template's without a generation prompt, up to the end of that message's text.
     */
    @Test
    void aContinuedMessageEndsThePrompt() {
        List<ChatMessage> chat = List.of(msg("user", "Count"), msg("assistant", "1, 2,"));
        String full = prompts.render(chat, List.of(), false, PromptBuilder.Thinking.AS_TEMPLATE);
        String continued = prompts.render(chat, List.of(), false, true, PromptBuilder.Thinking.AS_TEMPLATE);
        assertTrue(full.startsWith(continued) && continued.endsWith("<｜Assistant｜>1, 2,"), continued);
        assertEquals("<｜end▁of▁sentence｜>", full.substring(continued.length()));
        // The generation prompt and a continuation exclude each other.
        var both = org.junit.jupiter.api.Assertions.assertThrows(io.grpc.StatusRuntimeException.class,
                () -> prompts.render(chat, List.of(), true, true, PromptBuilder.Thinking.AS_TEMPLATE));
        assertTrue(both.getStatus().getDescription().contains("add_generation_prompt false"), both.getMessage());
    }

    /** Hugging Face's rules for the message's spaces, and the text found at its last occurrence. */
    @Test
    void theCutFollowsHuggingFacesRules() {
        // Kept whole by the template: its trailing spaces stay.
        assertEquals("<a>x 1 y 1 ", PromptBuilder.continued("<a>x 1 y 1 </a>", "1 ", "m"));
        // Trimmed by the template: the cut follows the stripped text.
        assertEquals("<a>go", PromptBuilder.continued("<a>go</a>", "go  ", "m"));
        // Leading spaces: Hugging Face compares the span with the message as sent, so trailing ones go.
        assertEquals("<a> go", PromptBuilder.continued("<a> go </a>", " go ", "m"));
        for (String bad : new String[] {"   ", "elsewhere"}) {
            var e = org.junit.jupiter.api.Assertions.assertThrows(io.grpc.StatusRuntimeException.class,
                    () -> PromptBuilder.continued("<a>go</a>", bad, "chat.messages[1]"));
            assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
            assertTrue(e.getStatus().getDescription().contains("chat.messages[1]"), e.getMessage());
        }
    }

    @Test
    void withoutToolsThePromptIsTheTemplatesOwn() {
        List<ChatMessage> chat = List.of(msg("system", "Be brief."), msg("user", "Hi"));
        String text = prompts.render(chat, List.of(), true, PromptBuilder.Thinking.AS_TEMPLATE);
        assertEquals(model.chatTemplate().render(List.of(dev.epic.text.chat.ChatMessage.system("Be brief."),
                dev.epic.text.chat.ChatMessage.user("Hi")), null, true), text);
        assertFalse(text.contains("## Tools"));
    }

    /**
     * Thinking is skipped only where the template knows thinking blocks: an empty block after R1-0528's
     * assistant tag; R1 January's opened block closed when turned off, left open for a constrained
     * answer's default (it thinks first); nothing on V3's template, which has no thinking.
     */
    @Test
    void thinkingIsSkippedOnlyWhereTheTemplateThinks() {
        String r1 = "<｜User｜>Hi<｜Assistant｜>";
        String jan = r1 + "<think>\n";
        for (PromptBuilder.Thinking t : PromptBuilder.Thinking.values()) {
            assertEquals(r1, PromptBuilder.withThinking(r1, t, false), "not a reasoning template: " + t);
            assertEquals(jan, PromptBuilder.withThinking(jan, t, false), "not a reasoning template: " + t);
        }
        assertEquals(r1, PromptBuilder.withThinking(r1, PromptBuilder.Thinking.AS_TEMPLATE, true));
        assertEquals(r1 + "<think>\n\n</think>\n\n", PromptBuilder.withThinking(r1, PromptBuilder.Thinking.SKIP, true));
        assertEquals(r1 + "<think>\n\n</think>\n\n",
                PromptBuilder.withThinking(r1, PromptBuilder.Thinking.SKIP_UNLESS_OPENED, true));
        assertEquals(r1 + "<think>\n\n</think>\n\n", PromptBuilder.withThinking(jan, PromptBuilder.Thinking.SKIP, true),
                "the opened block closed: one block, not two");
        assertEquals(jan, PromptBuilder.withThinking(jan, PromptBuilder.Thinking.SKIP_UNLESS_OPENED, true));
        String closed = r1 + "<think>\n\n</think>\n\n";
        assertEquals(closed, PromptBuilder.withThinking(closed, PromptBuilder.Thinking.SKIP, true), "closed already");
    }
}
