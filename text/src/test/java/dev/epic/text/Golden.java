package dev.epic.text;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.text.tokenizer.Tokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.GZIPInputStream;

/** Test access to testdata/tokenizer/*.jsonl and to an R1-vocabulary tokenizer directory. */
public final class Golden {
    public static final ObjectMapper JSON = new ObjectMapper();

    private Golden() {}

    public static Path testdata() {
        String dir = System.getProperty("epic.testdata");
        if (dir == null) {
            throw new IllegalStateException("system property epic.testdata is not set (run through Maven)");
        }
        return Path.of(dir);
    }

    public static List<JsonNode> lines(String file) {
        Path p = testdata().resolve("tokenizer").resolve(file);
        try {
            List<JsonNode> out = new ArrayList<>();
            for (String line : Files.readAllLines(p)) {
                if (!line.isBlank()) {
                    out.add(JSON.readTree(line));
                }
            }
            if (out.isEmpty()) {
                throw new IllegalStateException(p + " is empty");
            }
            return out;
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static int[] ints(JsonNode array) {
        int[] out = new int[array.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = array.get(i).asInt();
        }
        return out;
    }

    private static Path r1Dir;

    /** A model directory with the R1 vocabulary, written once per test JVM and deleted at exit. */
    public static synchronized Path r1ModelDir() throws IOException {
        if (r1Dir == null) {
            Path dir = Files.createTempDirectory("epic-r1-tokenizer");
            writeR1TokenizerDir(dir);
            Runtime.getRuntime().addShutdownHook(new Thread(() -> {
                try (var files = Files.list(dir)) {
                    for (Path f : files.toList()) {
                        Files.deleteIfExists(f);
                    }
                    Files.deleteIfExists(dir);
                } catch (IOException ignored) {
                    // best effort cleanup of a temp dir
                }
            }));
            r1Dir = dir;
        }
        return r1Dir;
    }

    /**
     * Writes the R1 vocabulary into {@code dir}: the shipped V3 tokenizer.json with added tokens 128798/128799
     * renamed to {@code <think>}/{@code </think>} (special false), plus the shipped tokenizer_config.json.
     */
    public static Path writeR1TokenizerDir(Path dir) throws IOException {
        JsonNode root;
        try (InputStream in = new GZIPInputStream(
                Tokenizer.class.getResourceAsStream("/dev/epic/text/deepseek-v3/tokenizer.json.gz"))) {
            root = JSON.readTree(in);
        }
        int renamed = 0;
        for (JsonNode t : (ArrayNode) root.get("added_tokens")) {
            int id = t.get("id").asInt();
            if (id == 128798 || id == 128799) {
                ((ObjectNode) t).put("content", id == 128798 ? "<think>" : "</think>");
                ((ObjectNode) t).put("special", false);
                renamed++;
            }
        }
        if (renamed != 2) {
            throw new IllegalStateException("expected to rename 2 added tokens, renamed " + renamed);
        }
        JSON.writeValue(dir.resolve("tokenizer.json").toFile(), root);
        try (InputStream in = Tokenizer.class.getResourceAsStream("/dev/epic/text/deepseek-v3/tokenizer_config.json")) {
            Files.copy(in, dir.resolve("tokenizer_config.json"));
        }
        return dir;
    }
}
