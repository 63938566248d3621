package dev.epic.model;

import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import java.util.HashMap;
import java.util.Map;

/** An in-memory {@link WeightSource} for unit tests of single layers. */
public final class HeapWeights implements WeightSource {
    private final Map<String, float[]> tensors = new HashMap<>();

    public HeapWeights put(String name, float... values) {
        tensors.put(name, values);
        return this;
    }

    @Override
    public Matrix matrix(String name, int rows, int cols) {
        float[] v = get(name, rows * cols);
        return Matrices.f32(v, rows, cols);
    }

    @Override
    public float[] vector(String name, int length) {
        return get(name, length).clone();
    }

    private float[] get(String name, int length) {
        float[] v = tensors.get(name);
        if (v == null || v.length != length) {
            throw new IllegalArgumentException(name + ": expected " + length + " values, have "
                    + (v == null ? "none" : v.length));
        }
        return v;
    }

    @Override
    public boolean contains(String name) {
        return tensors.containsKey(name);
    }
}
