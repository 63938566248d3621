package dev.epic.model.synth;

import dev.epic.model.config.ModelConfig;
import dev.epic.model.config.ModelConfig.ScoringFunc;
import dev.epic.model.config.ModelConfig.TopkMethod;
import dev.epic.model.config.RopeScaling;
import java.util.List;

/** Named architectures for synthetic checkpoints. */
public final class Presets {
    private Presets() {}

    /** DeepSeek-V3's YaRN settings (factor 40 over 4096 original positions). */
    public static final RopeScaling V3_YARN = new RopeScaling(40, 4096, 32, 1, 1.0, 1.0);

    public static List<String> names() {
        return List.of("tiny-v3", "bench-v3");
    }

    /** The preset's config, or null if there is no preset of that name. */
    public static ModelConfig byName(String name) {
        return switch (name) {
            case "tiny-v3" -> tinyV3();
            case "bench-v3" -> benchV3();
            default -> null;
        };
    }

    /** The architecture of testdata/tiny-v3 (4 layers, 256 tiny experts, one MTP layer). */
    public static ModelConfig tinyV3() {
        return new ModelConfig(64, 192, 16, 4, 4, 48, 32, 16, 8, 16, 256, 1, 8, 8, 4, 2.5, ScoringFunc.SIGMOID,
                TopkMethod.NOAUX_TC, true, 1, 1, 1e-6, 10000, V3_YARN, 163840, 2048, 0, 1, false, null, 1);
    }

    /** A ~1-3 GB model with V3's vocabulary and routing shape (256 experts, top-8, 8 groups / top-4). */
    public static ModelConfig benchV3() {
        return new ModelConfig(1024, 2816, 256, 8, 8, 384, 256, 64, 32, 64, 256, 1, 8, 8, 4, 2.5,
                ScoringFunc.SIGMOID, TopkMethod.NOAUX_TC, true, 1, 1, 1e-6, 10000, V3_YARN, 163840, 129280, 0, 1,
                false, null, 0);
    }
}
