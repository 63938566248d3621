package dev.epic.worker;

/**
 * The routed experts one process hosts: the same expert ids in every MoE layer, weights resident
 * only for those. Implementations hold the weights; {@link ShardExecutor} does the routing
 * bookkeeping around them.
 */
public interface ExpertShard {
    int hiddenSize();

    /** Hosted expert ids, sorted. */
    int[] experts();

    boolean isMoeLayer(int layer);

    /** y[b] = Expert(layer, expert)(x[b]) for b in [0, batch); x and y are [batch x hidden] row-major. */
    void apply(int layer, int expert, float[] x, int batch, float[] y);

    /** Bytes of weight storage this shard holds (for logs and capacity planning). */
    long residentBytes();
}
