package dev.epic.text.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.TextException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/**
 * The parts of a Hugging Face {@code tokenizer_config.json} the engine uses: BOS/EOS/pad token strings, whether
 * "with special tokens" encoding prepends BOS, and the Jinja chat template.
 */
public record TokenizerConfig(String bosToken, String eosToken, String padToken, boolean addBosToken,
                              String chatTemplate) {

    static final String SHIPPED_RESOURCE = "/dev/epic/text/deepseek-v3/tokenizer_config.json";

    /** The DeepSeek-V3 config shipped with EPIC. */
    public static TokenizerConfig deepSeekV3() {
        try (InputStream in = TokenizerConfig.class.getResourceAsStream(SHIPPED_RESOURCE)) {
            if (in == null) {
                throw new TextException("missing resource " + SHIPPED_RESOURCE);
            }
            return parse(new ObjectMapper().readTree(in), "resource " + SHIPPED_RESOURCE);
        } catch (IOException e) {
            throw new TextException("cannot read resource " + SHIPPED_RESOURCE + ": " + e.getMessage(), e);
        }
    }

    public static TokenizerConfig read(Path file) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new TextException(file + ": not readable JSON: " + e.getMessage(), e);
        }
        return parse(root, file.toString());
    }

    static TokenizerConfig parse(JsonNode root, String source) {
        if (root == null || !root.isObject()) {
            throw new TextException(source + ": expected a JSON object");
        }
        JsonNode addBos = root.path("add_bos_token");
        return new TokenizerConfig(tokenText(root, "bos_token", source), tokenText(root, "eos_token", source),
                tokenText(root, "pad_token", source), addBos.isMissingNode() || addBos.asBoolean(true),
                chatTemplate(root.get("chat_template"), source));
    }

    /** A token is either a plain string or an AddedToken object with "content". */
    private static String tokenText(JsonNode root, String field, String source) {
        JsonNode n = root.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (n.isTextual()) {
            return n.asText();
        }
        if (n.isObject() && n.path("content").isTextual()) {
            return n.get("content").asText();
        }
        throw new TextException(source + ": field " + field + " must be a string or an object with \"content\"");
    }

    /** A single template string, or the newer list form [{"name": "default", "template": ...}, ...]. */
    private static String chatTemplate(JsonNode n, String source) {
        if (n == null || n.isNull()) {
            return null;
        }
        if (n.isTextual()) {
            return n.asText();
        }
        if (n.isArray()) {
            for (JsonNode t : n) {
                if ("default".equals(t.path("name").asText()) && t.path("template").isTextual()) {
                    return t.get("template").asText();
                }
            }
        }
        throw new TextException(source + ": field chat_template must be a string or a list with a \"default\" entry");
    }
}
