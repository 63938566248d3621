package dev.epic.model.config;

/**
 * {@code quantization_config} of the fp8 checkpoints: float8_e4m3fn weights with one float32
 * {@code weight_scale_inv} per [blockRows x blockCols] block.
 */
public record QuantizationConfig(String quantMethod, String fmt, String activationScheme, int blockRows,
        int blockCols) {}
