package dev.epic.model;

import dev.epic.kernels.Matrix;

/**
 * Where the engine gets its weights, by Hugging Face tensor name. A memory-mapped checkpoint
 * implements it; so could a device-resident store or a remote shard. Implementations validate
 * shapes and fail with a message naming the tensor.
 */
public interface WeightSource {
    /** A 2-D weight [rows x cols] (a linear's {@code weight}: out x in), in whatever storage it has. */
    Matrix matrix(String name, int rows, int cols);

    /** A small 1-D tensor widened to fp32 (norm weights, routing bias): O(hidden) floats. */
    float[] vector(String name, int length);

    boolean contains(String name);

    /**
     * Whether tensors {@code a} and {@code b} hold the same dtype, shape and bytes, so one loaded matrix
     * can serve both (the MTP layer's copies of the embedding and lm_head). False when unknown.
     */
    default boolean sameTensor(String a, String b) {
        return false;
    }
}
