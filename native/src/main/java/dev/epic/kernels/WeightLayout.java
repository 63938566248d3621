package dev.epic.kernels;

import java.lang.foreign.MemorySegment;

/**
 * How a {@link Matrix} stores its weights, for backends that copy them elsewhere (a GPU): the raw
 * little-endian row-major bytes, and for fp8 the fp32 block scales and the block shape.
 */
public record WeightLayout(Format format, MemorySegment data, MemorySegment scales, int blockRows, int blockCols) {
    public enum Format { F32, BF16, FP8_BLOCK }

    static WeightLayout plain(Format format, MemorySegment data) {
        return new WeightLayout(format, data, null, 0, 0);
    }
}
