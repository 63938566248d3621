package dev.epic.cli;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.TextException;
import dev.epic.text.tokenizer.Tokenizer;
import java.io.FileInputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code epic tokenize}: JSON lines {"text": ...} on stdin to {"ids": [...]} on stdout. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = {"Encode text with a model's tokenizer.",
            "Reads JSON lines {\"text\": \"...\"} on stdin, writes {\"ids\": [...]} per line, in order.",
            "Uses DIR/tokenizer.json, or the shipped DeepSeek-V3 tokenizer when DIR has none."})
public final class TokenizeCommand implements Callable<Integer> {
    @Option(names = "--model", required = true, paramLabel = "DIR", description = "model directory")
    Path model;

    @Option(names = "--bos", description = "prepend the BOS token id (as transformers' encode does)")
    boolean bos;

    @Spec
    CommandSpec spec;

    private final InputStream in;
    private final OutputStream out;

    public TokenizeCommand() {
        this(new FileInputStream(FileDescriptor.in), new FileOutputStream(FileDescriptor.out));
    }

    TokenizeCommand(InputStream in, OutputStream out) {
        this.in = in;
        this.out = out;
    }

    @Override
    public Integer call() throws Exception {
        Tokenizer tokenizer;
        try {
            tokenizer = Tokenizer.fromModelDir(model);
        } catch (TextException e) {
            spec.commandLine().getErr().println("epic tokenize: " + e.getMessage());
            return LogitsCommand.BAD_INPUT;
        }
        try {
            JsonLines.process(in, out, line -> {
                JsonNode text = line.get("text");
                if (text == null || !text.isTextual()) {
                    throw new TextException("expected {\"text\": string}");
                }
                return Map.of("ids", bos ? tokenizer.encodeWithBos(text.asText()) : tokenizer.encode(text.asText()));
            });
        } catch (JsonLines.BadLine e) {
            spec.commandLine().getErr().println("epic tokenize: " + e.getMessage());
            return LogitsCommand.BAD_INPUT;
        }
        return 0;
    }
}
