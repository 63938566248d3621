package dev.epic.model.config;

/**
 * YaRN rope scaling ({@code rope_scaling} with type "yarn"), as in DeepSeek-V3's config.json.
 *
 * @param factor context extension factor (40 for V3)
 * @param originalMaxPositionEmbeddings context length the model was pre-trained with (4096)
 */
public record RopeScaling(double factor, int originalMaxPositionEmbeddings, double betaFast, double betaSlow,
        double mscale, double mscaleAllDim) {}
