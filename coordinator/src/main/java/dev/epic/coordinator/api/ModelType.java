package dev.epic.coordinator.api;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Path;

/** The {@code model_type} of a checkpoint's config.json (for ModelInfo). */
final class ModelType {
    private ModelType() {}

    static String of(Path modelDir) {
        try {
            return new ObjectMapper().readTree(modelDir.resolve("config.json").toFile()).path("model_type").asText("");
        } catch (IOException e) {
            return "";
        }
    }
}
