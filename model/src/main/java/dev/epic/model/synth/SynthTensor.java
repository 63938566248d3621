package dev.epic.model.synth;

import dev.epic.model.checkpoint.Dtype;
import dev.epic.model.checkpoint.SafetensorsWriter;

/**
 * A tensor of a synthetic checkpoint and how to fill it.
 *
 * @param kind what the values are (random linear weights, ones for norms, small bias, block scales)
 * @param std standard deviation of the weights (for fp8: of the weights before quantisation)
 */
record SynthTensor(String name, Dtype dtype, long[] shape, Kind kind, double std) {
    enum Kind { WEIGHT, ONES, BIAS, FP8_WEIGHT, FP8_SCALES }

    SafetensorsWriter.Spec spec() {
        return new SafetensorsWriter.Spec(name, dtype, shape);
    }

    long byteSize() {
        return spec().byteSize();
    }
}
