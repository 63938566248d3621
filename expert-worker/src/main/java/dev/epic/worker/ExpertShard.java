package dev.epic.worker;

import java.util.Map;

/**
 * The routed experts one process hosts: its own expert ids in every MoE layer, plus (for
 * expert-parallel load balancing) redundant experts in single layers, weights resident only for
 * those. Implementations hold the weights; {@link ShardExecutor} does the routing bookkeeping around them.
 */
public interface ExpertShard {
    int hiddenSize();

    /** Routed experts per layer in the model (ids run from 0 to this). */
    int expertCount();

    /** Its own expert ids (every MoE layer), sorted. */
    int[] experts();

    boolean isMoeLayer(int layer);

    /**
     * Whether it hosts its experts of the checkpoint's multi-token-prediction layer too (layer
     * {@code num_hidden_layers}, which {@link #isMoeLayer} then includes), for coordinators drafting with it.
     */
    default boolean hostsMtpLayer() {
        return false;
    }

    /** Whether expert {@code expert} of {@code layer} is hosted now (its own or redundant). */
    boolean hosts(int layer, int expert);

    /** y[b] = Expert(layer, expert)(x[b]) for b in [0, batch); x and y are [batch x hidden] row-major. */
    void apply(int layer, int expert, float[] x, int batch, float[] y);

    /**
     * A whole message, combined where the experts run: pair p (in expert order) is row pairRow[p]
     * with gate weight pairWeight[p]; expert experts[i] takes pairs [starts[i], starts[i+1]). Writes
     * out[r] = sum over row r's pairs in order of (double) (weight * Expert(x[r])) and returns true,
     * or returns false, leaving the combining to the caller (the default: CPU shards combine in
     * {@link ShardExecutor}). A GPU shard saves the copies of one output per pair this way.
     */
    default boolean forwardCombined(int layer, float[] x, int rows, int pairs, int[] pairRow, float[] pairWeight,
            int[] experts, int[] starts, int count, double[] out) {
        return false;
    }

    /**
     * Hosts these redundant experts (layer -> expert ids) from now on, in place of the previous ones.
     * Messages being computed keep the experts they started with.
     */
    default void redundant(Map<Integer, int[]> extras) {
        throw new UnsupportedOperationException("this shard hosts no redundant experts");
    }

    /**
     * Has the JIT compile the kernels its experts run, before the worker announces itself (see
     * {@code KernelWarmup}); returns how many expert products that took, 0 where nothing needs it.
     */
    default int warmUp() {
        return 0;
    }

    /** Bytes of weight storage this shard holds (for logs and capacity planning). */
    long residentBytes();
}
