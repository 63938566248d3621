package dev.epic.model.quant;

import dev.epic.kernels.Matrices;
import java.util.Locale;

/**
 * Storage of the engine's linear weights for a run. {@code AUTO} uses the checkpoint as stored (the
 * fp32 reference path: every dtype is widened exactly); the others convert at load, or map a copy
 * made once by {@code epic quantize}.
 */
public enum WeightFormat {
    /** As stored in the checkpoint. */
    AUTO,
    /** bf16: fp32 and fp8 weights rounded to bf16 (16-bit weights stay as stored). */
    BF16,
    /** Q8_0-style int8 groups of 32 with an fp32 scale (1.125 bytes per weight). */
    Q8,
    /** Q4_0-style 4-bit groups of 32 with an fp32 scale (0.625 bytes per weight). */
    Q4;

    /** Parses auto|bf16|q8|q4 (any case). */
    public static WeightFormat parse(String s) {
        try {
            return valueOf(s.trim().toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("weights must be auto, bf16, q8 or q4, got '" + s + "'");
        }
    }

    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /**
     * Storage bytes of a converted [rows, cols] linear weight, known without converting it (a
     * coordinator sizes its workers' experts this way). Not defined for AUTO, which keeps each dtype.
     */
    public long convertedBytes(int rows, int cols) {
        return switch (this) {
            case BF16 -> 2L * rows * cols;
            case Q8 -> Matrices.q8Bytes(rows, cols);
            case Q4 -> Matrices.q4Bytes(rows, cols);
            case AUTO -> throw new IllegalStateException("AUTO keeps the stored dtype: size it from the checkpoint");
        };
    }

    /** The directory next to the checkpoint's files where {@code epic quantize} puts this format. */
    public String cacheDirName() {
        return "epic-" + id();
    }
}
