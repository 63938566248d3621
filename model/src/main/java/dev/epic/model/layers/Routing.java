package dev.epic.model.layers;

/**
 * The gate's decision for a batch of rows: {@code experts[r*k + j]} in descending order of the
 * selection score, with their routing weights (normalised if configured, times routed_scaling_factor).
 */
public record Routing(int rows, int k, int[] experts, float[] weights) {}
