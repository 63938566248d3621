package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

/** {@code epic tokenize} and {@code epic chat-template} through picocli, with stdin/stdout redirected. */
class TextCommandsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Path TESTDATA = Path.of(System.getProperty("epic.testdata"), "tokenizer");

    record Run(int exitCode, String stdout, String stderr) {
        List<JsonNode> lines() throws IOException {
            List<JsonNode> out = new ArrayList<>();
            for (String l : stdout.split("\n")) {
                if (!l.isEmpty()) {
                    out.add(JSON.readTree(l));
                }
            }
            return out;
        }
    }

    private static Run run(byte[] stdin, String... args) {
        ByteArrayInputStream in = new ByteArrayInputStream(stdin);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        CommandLine cl = new CommandLine(new Main(), new CommandLine.IFactory() {
            @Override
            public <K> K create(Class<K> cls) throws Exception {
                if (cls == TokenizeCommand.class) {
                    return cls.cast(new TokenizeCommand(in, out));
                }
                if (cls == ChatTemplateCommand.class) {
                    return cls.cast(new ChatTemplateCommand(in, out));
                }
                return CommandLine.defaultFactory().create(cls);
            }
        });
        StringWriter err = new StringWriter();
        cl.setErr(new PrintWriter(err, true));
        int rc = cl.execute(args);
        return new Run(rc, out.toString(StandardCharsets.UTF_8), err.toString());
    }

    private static List<JsonNode> golden(String file) throws IOException {
        List<JsonNode> out = new ArrayList<>();
        for (String l : Files.readAllLines(TESTDATA.resolve(file))) {
            out.add(JSON.readTree(l));
        }
        return out;
    }

    @Test
    void tokenizeAnswersEveryGoldenLineInOrder(@TempDir Path emptyModelDir) throws IOException {
        List<JsonNode> golden = golden("encode.jsonl");
        StringBuilder stdin = new StringBuilder();
        for (JsonNode g : golden) {
            stdin.append(JSON.writeValueAsString(JSON.createObjectNode().put("text", g.get("text").asText())))
                    .append('\n');
        }
        byte[] input = stdin.toString().getBytes(StandardCharsets.UTF_8);
        Run plain = run(input, "tokenize", "--model", emptyModelDir.toString());
        assertEquals(0, plain.exitCode(), plain.stderr());
        List<JsonNode> lines = plain.lines();
        assertEquals(golden.size(), lines.size());
        for (int i = 0; i < golden.size(); i++) {
            assertEquals(golden.get(i).get("ids"), lines.get(i).get("ids"), golden.get(i).get("id").asText());
        }
        Run bos = run(input, "tokenize", "--model", emptyModelDir.toString(), "--bos");
        List<JsonNode> bosLines = bos.lines();
        for (int i = 0; i < golden.size(); i++) {
            ArrayNode expected = JSON.createArrayNode().add(0).addAll((ArrayNode) golden.get(i).get("ids"));
            assertEquals(expected, bosLines.get(i).get("ids"));
        }
    }

    @Test
    void chatTemplateRendersV3ConversationsAndR1WithTemplateFile(@TempDir Path dir) throws IOException {
        Path v3Dir = Files.createDirectory(dir.resolve("v3"));
        checkChat(golden("chat.jsonl"), run(chatInput(golden("chat.jsonl")), "chat-template", "--model",
                v3Dir.toString()));

        Path r1Dir = writeR1Dir(Files.createDirectory(dir.resolve("r1")));
        Path template = Path.of(System.getProperty("epic.root"),
                "text/src/main/resources/dev/epic/text/deepseek-v3/chat_template_r1_0528.jinja");
        List<JsonNode> r1 = golden("chat_r1_0528.jsonl");
        checkChat(r1, run(chatInput(r1), "chat-template", "--model", r1Dir.toString(), "--template",
                template.toString()));
    }

    private static byte[] chatInput(List<JsonNode> golden) throws IOException {
        StringBuilder b = new StringBuilder();
        for (JsonNode g : golden) {
            ObjectNode req = JSON.createObjectNode();
            req.set("messages", g.get("messages"));
            if (g.has("tools")) {
                req.set("tools", g.get("tools"));
            }
            req.put("add_generation_prompt", g.get("add_generation_prompt").asBoolean());
            b.append(JSON.writeValueAsString(req)).append('\n');
        }
        return b.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void checkChat(List<JsonNode> golden, Run run) throws IOException {
        assertEquals(0, run.exitCode(), run.stderr());
        List<JsonNode> lines = run.lines();
        assertEquals(golden.size(), lines.size());
        for (int i = 0; i < golden.size(); i++) {
            String id = golden.get(i).get("id").asText();
            assertEquals(golden.get(i).get("prompt").asText(), lines.get(i).get("text").asText(), id);
            assertEquals(golden.get(i).get("ids"), lines.get(i).get("ids"), id);
        }
        // Non-ASCII is written raw, not \\u-escaped.
        assertTrue(run.stdout().startsWith("{\"text\":\"<｜begin▁of▁sentence｜>"), run.stdout());
    }

    private static Path writeR1Dir(Path dir) throws IOException {
        JsonNode root;
        try (InputStream in = new GZIPInputStream(TextCommandsTest.class.getResourceAsStream(
                "/dev/epic/text/deepseek-v3/tokenizer.json.gz"))) {
            root = JSON.readTree(in);
        }
        for (JsonNode t : root.get("added_tokens")) {
            int id = t.get("id").asInt();
            if (id == 128798 || id == 128799) {
                ((ObjectNode) t).put("content", id == 128798 ? "<think>" : "</think>").put("special", false);
            }
        }
        JSON.writeValue(dir.resolve("tokenizer.json").toFile(), root);
        try (InputStream in = TextCommandsTest.class.getResourceAsStream(
                "/dev/epic/text/deepseek-v3/tokenizer_config.json")) {
            Files.copy(in, dir.resolve("tokenizer_config.json"));
        }
        return dir;
    }

    @Test
    void badLinesAreReportedWithTheirLineNumber(@TempDir Path dir) {
        String ok = "{\"text\": \"a\"}\n";
        Run json = run((ok + ok + "{\"text\": \n" + ok).getBytes(StandardCharsets.UTF_8), "tokenize", "--model",
                dir.toString());
        assertEquals(2, json.exitCode());
        assertTrue(json.stderr().contains("line 3: not valid JSON"), json.stderr());
        assertEquals(2, json.stdout().split("\n").length, "lines before the bad one were answered");

        byte[] badUtf8 = {'{', '"', 't', 'e', 'x', 't', '"', ':', '"', (byte) 0xC3, '(', '"', '}', '\n'};
        Run utf8 = run(concat(ok.getBytes(StandardCharsets.UTF_8), badUtf8), "tokenize", "--model", dir.toString());
        assertEquals(2, utf8.exitCode());
        assertTrue(utf8.stderr().contains("line 2: invalid UTF-8"), utf8.stderr());

        Run surrogate = run("{\"text\": \"x\\ud800\"}\n".getBytes(StandardCharsets.UTF_8), "tokenize", "--model",
                dir.toString());
        assertEquals(2, surrogate.exitCode());
        assertTrue(surrogate.stderr().contains("line 1: text is not valid Unicode"), surrogate.stderr());

        Run field = run("{\"txt\": \"a\"}".getBytes(StandardCharsets.UTF_8), "tokenize", "--model", dir.toString());
        assertEquals(2, field.exitCode());
        assertTrue(field.stderr().contains("line 1: expected {\"text\": string}"), field.stderr());

        Run chat = run("{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}]}\n{\"messages\": [{\"content\": 1}]}"
                .getBytes(StandardCharsets.UTF_8), "chat-template", "--model", dir.toString());
        assertEquals(2, chat.exitCode());
        assertTrue(chat.stderr().contains("line 2: messages[0].role must be a non-empty string"), chat.stderr());
        assertEquals("{\"text\":\"<｜begin▁of▁sentence｜><｜User｜>Hi\",\"ids\":[0,128803,23166]}\n", chat.stdout());
    }

    @Test
    void missingModelDirAndTemplateFileAreClearErrors(@TempDir Path dir) {
        Run noDir = run(new byte[0], "tokenize", "--model", dir.resolve("nope").toString());
        assertEquals(2, noDir.exitCode());
        assertTrue(noDir.stderr().contains("does not exist"), noDir.stderr());
        Run noTemplate = run(new byte[0], "chat-template", "--model", dir.toString(), "--template",
                dir.resolve("missing.jinja").toString());
        assertEquals(2, noTemplate.exitCode());
        assertTrue(noTemplate.stderr().contains("missing.jinja"), noTemplate.stderr());
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] out = new byte[a.length + b.length];
        System.arraycopy(a, 0, out, 0, a.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
