package dev.epic.model.moe;

import java.util.function.Supplier;

/**
 * Where the routed experts of the MoE layers run: in this process, or on remote expert workers.
 * The MoE block computes the gate and the shared expert itself and hands the routed part here.
 */
public interface RoutedExperts {
    /**
     * For each token row i in [0, rows): out[i] = sum_j weights[i*k + j] * Expert(layer, ids[i*k + j])(x[i]),
     * where x and out are [rows x hidden] row-major; out is overwritten.
     */
    void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out);

    /**
     * {@link #forward}, running {@code alongside} on this thread while the routed experts compute: experts
     * elsewhere send their requests first and run it before waiting for the answers, so the caller's own
     * work (the shared expert) overlaps the workers and the network. In-process experts run it after.
     */
    default void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out,
            Runnable alongside) {
        forward(layer, x, rows, expertIds, weights, k, out);
        alongside.run();
    }

    /**
     * The routed experts of the checkpoint's multi-token-prediction layer {@code layer} (past the decoder's),
     * for its drafts. {@code own} makes a copy in this process; by default that is what runs it. Experts
     * elsewhere may run the layer where their workers hold it, and take {@code own} (made only then) where
     * they do not.
     */
    default RoutedExperts mtpLayer(int layer, Supplier<RoutedExperts> own) {
        return own.get();
    }
}
