package dev.epic.model;

import dev.epic.model.layers.Routing;

/**
 * Optional hooks into a step, for traces and tests. Arrays are [rows x hidden] over all rows of the
 * step, in chunk order; they are live buffers: copy what you keep.
 */
public interface ForwardObserver {
    ForwardObserver NONE = new ForwardObserver() {};

    default void embeddings(float[] h, int rows) {}

    /** Residual stream after decoder layer {@code layer} (before the final norm). */
    default void blockOutput(int layer, float[] h, int rows) {}

    default void routing(int layer, Routing routing) {}
}
