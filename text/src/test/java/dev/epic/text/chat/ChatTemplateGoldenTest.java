package dev.epic.text.chat;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.Golden;
import dev.epic.text.tokenizer.Tokenizer;
import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** Every conversation of chat.jsonl (V3 template) and chat_r1_0528.jsonl (R1-0528 file), text and ids. */
class ChatTemplateGoldenTest {
    static Tokenizer v3;
    static Tokenizer r1;

    @BeforeAll
    static void load() throws IOException {
        v3 = Tokenizer.deepSeekV3();
        r1 = Tokenizer.fromModelDir(Golden.r1ModelDir());
    }

    @TestFactory
    Stream<DynamicTest> deepSeekV3Template() {
        ChatTemplate template = ChatTemplate.fromConfig(v3.config());
        return lines("chat.jsonl", "deepseek-v3", template, v3);
    }

    @TestFactory
    Stream<DynamicTest> deepSeekR1_0528Template() {
        ChatTemplate template = ChatTemplate.read(
                Path.of(System.getProperty("epic.root"), "text/src/main/resources/dev/epic/text/deepseek-v3/"
                        + "chat_template_r1_0528.jinja"), r1.config());
        return lines("chat_r1_0528.jsonl", "deepseek-r1-0528", template, r1);
    }

    private Stream<DynamicTest> lines(String file, String templateName, ChatTemplate template, Tokenizer tok) {
        return Golden.lines(file).stream().map(line -> dynamicTest(line.get("id").asText(), () -> {
            assertEquals(templateName, line.get("template").asText());
            List<ChatMessage> messages = ChatMessage.listFromJson(line.get("messages"), "messages");
            JsonNode toolsNode = line.get("tools");
            List<?> tools = toolsNode == null ? null : Golden.JSON.convertValue(toolsNode, List.class);
            String prompt = template.render(messages, tools, line.get("add_generation_prompt").asBoolean());
            assertEquals(line.get("prompt").asText(), prompt);
            assertArrayEquals(Golden.ints(line.get("ids")), tok.encode(prompt));
        }));
    }
}
