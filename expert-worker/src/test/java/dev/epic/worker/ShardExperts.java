package dev.epic.worker;

import dev.epic.model.moe.RoutedExperts;

/**
 * Routed experts computed in this process by an {@link ExpertShard} that hosts all of them (a GPU
 * shard, say), through the same {@link ShardExecutor} an expert worker runs: the sum over a row's
 * experts is taken in double and rounded once, as {@link dev.epic.model.moe.LocalExperts} does.
 */
public final class ShardExperts implements RoutedExperts {
    private final ShardExecutor executor;
    private final int hidden;
    private double[] sums = new double[0];
    private int[] counts = new int[0];

    public ShardExperts(ExpertShard shard) {
        this.executor = new ShardExecutor(shard);
        this.hidden = shard.hiddenSize();
    }

    @Override
    public synchronized void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k,
            float[] out) {
        if (sums.length < rows * hidden) {
            sums = new double[rows * hidden];
        }
        if (counts.length < rows) {
            counts = new int[rows];
        }
        java.util.Arrays.fill(counts, 0, rows, k);
        executor.forward(layer, x, rows, counts, expertIds, weights, sums);
        for (int i = 0; i < rows * hidden; i++) {
            out[i] = (float) sums[i];
        }
    }
}
