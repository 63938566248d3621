package dev.epic.model.moe;

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
}
