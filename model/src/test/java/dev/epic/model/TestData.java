package dev.epic.model;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.config.ModelConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the repository's testdata/ (surefire sets epic.testdata). */
public final class TestData {
    private TestData() {}

    public static Path dir() {
        String p = System.getProperty("epic.testdata");
        Path dir = p != null ? Path.of(p) : Path.of("..", "testdata");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("testdata not found at " + dir.toAbsolutePath()
                    + " (set -Depic.testdata)");
        }
        return dir;
    }

    public static Path model(String name) {
        return dir().resolve(name);
    }

    /** Test model {@code name}'s config with a context of {@code positions} (max_position_embeddings). */
    public static ModelConfig withContext(String name, int positions) throws IOException {
        ObjectNode json = (ObjectNode) new ObjectMapper().readTree(model(name).resolve("config.json").toFile());
        json.put("max_position_embeddings", positions);
        return ModelConfig.parse(json, name + " with a context of " + positions);
    }
}
