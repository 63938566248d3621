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

    /** {@link #effective(dev.epic.model.checkpoint.Checkpoint)} of the checkpoint in {@code modelDir} (headers only). */
    public WeightFormat effective(java.nio.file.Path modelDir) {
        if (this != BF16) {
            return this;
        }
        try (var c = dev.epic.model.checkpoint.Checkpoint.open(modelDir)) {
            return effective(c);
        }
    }

    /**
     * The format the weights of {@code c} compute in under this one: bf16 over a checkpoint whose
     * converted weights are 16-bit already leaves them as stored, so it is AUTO (workers and
     * coordinators compare these: the same bits must not be refused as another format).
     */
    public WeightFormat effective(dev.epic.model.checkpoint.Checkpoint c) {
        if (this != BF16) {
            return this;
        }
        for (String name : c.tensorNames()) {
            if (c.isMtpTensor(name)) {
                continue; // the MTP layer's: the coordinator's own drafter, not what workers compare
            }
            var t = c.info(name);
            if (t.shape().length == 2 && ConvertedWeights.converts(name) && t.dtype().bytes() != 2) {
                return this;
            }
        }
        return AUTO;
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
