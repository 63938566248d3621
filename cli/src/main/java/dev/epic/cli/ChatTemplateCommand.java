package dev.epic.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.TextException;
import dev.epic.text.chat.ChatMessage;
import dev.epic.text.chat.ChatTemplate;
import dev.epic.text.tokenizer.Tokenizer;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code epic chat-template}: conversations as JSON lines to rendered prompts and their token ids. */
@Command(name = "chat-template", mixinStandardHelpOptions = true,
        description = {"Render conversations with a model's chat template and tokenize the prompt.",
            "Reads JSON lines {\"messages\": [...], \"tools\": [...], \"add_generation_prompt\": bool} on stdin,",
            "writes {\"text\": prompt, \"ids\": [...]} per line (ids without an extra BOS: the prompt has it)."})
public final class ChatTemplateCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR",
            description = "model directory (tokenizer.json/tokenizer_config.json; shipped DeepSeek-V3 if absent)")
    Path model;

    @Option(names = "--template", paramLabel = "FILE",
            description = "Jinja template file to use instead of tokenizer_config.json's chat_template")
    Path template;

    @Spec
    CommandSpec spec;

    private final InputStream in;
    private final OutputStream out;

    public ChatTemplateCommand() {
        this(new FileInputStream(FileDescriptor.in), new FileOutputStream(FileDescriptor.out));
    }

    ChatTemplateCommand(InputStream in, OutputStream out) {
        this.in = in;
        this.out = out;
    }

    @Override
    public Integer call() throws Exception {
        Tokenizer tokenizer;
        ChatTemplate chat;
        try {
            tokenizer = Tokenizer.fromModelDir(model);
            chat = template != null ? ChatTemplate.read(template, tokenizer.config())
                    : ChatTemplate.fromConfig(tokenizer.config());
        } catch (TextException e) {
            spec.commandLine().getErr().println("epic chat-template: " + e.getMessage());
            return LogitsCommand.BAD_INPUT;
        }
        try {
            JsonLines.process(in, out, line -> {
                List<ChatMessage> messages = ChatMessage.listFromJson(line.get("messages"), "messages");
                JsonNode toolsNode = line.get("tools");
                List<?> tools = null;
                if (toolsNode != null && !toolsNode.isNull()) {
                    if (!toolsNode.isArray()) {
                        throw new TextException("tools must be an array");
                    }
                    tools = JsonLines.MAPPER.convertValue(toolsNode, List.class);
                }
                JsonNode gen = line.get("add_generation_prompt");
                if (gen != null && !gen.isBoolean() && !gen.isNull()) {
                    throw new TextException("add_generation_prompt must be true or false");
                }
                String prompt = chat.render(messages, tools, gen != null && gen.asBoolean());
                Map<String, Object> result = new LinkedHashMap<>();
                result.put("text", prompt);
                result.put("ids", tokenizer.encode(prompt));
                return result;
            });
        } catch (JsonLines.BadLine e) {
            spec.commandLine().getErr().println("epic chat-template: " + e.getMessage());
            return LogitsCommand.BAD_INPUT;
        }
        return 0;
    }
}
