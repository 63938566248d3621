package dev.epic.worker;

import java.util.Arrays;

/**
 * Runs one dispatch message on an {@link ExpertShard}: all rows routed to the same expert go
 * through one batched call, and each row's outputs are pre-reduced with its gate weights, so the
 * answer is one vector per row. Scratch buffers grow as needed and are reused across messages;
 * an executor serves one stream (one thread) at a time.
 */
public final class ShardExecutor {
    private final ExpertShard shard;
    private final int hidden;
    private final int experts;
    /** Per expert id: its pairs' count, then their start in the sorted order. */
    private final int[] count;
    private final int[] start;
    /** The experts with rows in this message, and where their rows start (one more entry: the end). */
    private final int[] activeIds;
    private final int[] activeStarts;
    private int[] pairRow = new int[0];
    private float[] pairWeight = new float[0];
    private float[] xs = new float[0];
    private float[] ys = new float[0];

    public ShardExecutor(ExpertShard shard) {
        this.shard = shard;
        this.hidden = shard.hiddenSize();
        this.experts = shard.expertCount();
        this.count = new int[experts];
        this.start = new int[experts + 1];
        this.activeIds = new int[experts];
        this.activeStarts = new int[experts + 1];
    }

    /**
     * out[r] = sum over row r's pairs of weight * Expert(id)(x[r]), each term rounded to float as the
     * reference does, summed in double: a double sum of a few floats is exact in practice, so the
     * coordinator's total is the same however the experts are grouped on workers. Row r's pairs are
     * ids/weights[o .. o + counts[r]) with o the running sum of counts. Unknown experts are refused
     * with an IllegalArgumentException naming them.
     */
    public void forward(int layer, float[] x, int rows, int[] counts, int[] ids, float[] weights, double[] out) {
        if (!shard.isMoeLayer(layer)) {
            throw new IllegalArgumentException("layer " + layer + " is not a MoE layer of this model");
        }
        int pairs = 0;
        for (int r = 0; r < rows; r++) {
            pairs += counts[r];
        }
        // Counting sort of (row, weight) pairs by expert id; the experts hosted now (own or redundant).
        Arrays.fill(count, 0);
        for (int p = 0; p < pairs; p++) {
            int e = ids[p];
            if (e < 0 || e >= experts || !shard.hosts(layer, e)) {
                throw new IllegalArgumentException("expert " + e + " is not hosted by this worker in layer " + layer
                        + " (hosts " + dev.epic.transport.ExpertRanges.format(shard.experts()) + " in every layer)");
            }
            count[e]++;
        }
        start[0] = 0;
        for (int e = 0; e < experts; e++) {
            start[e + 1] = start[e] + count[e];
        }
        if (pairRow.length < pairs) {
            pairRow = new int[pairs];
            pairWeight = new float[pairs];
        }
        int[] fill = count; // reused as write cursors
        System.arraycopy(start, 0, fill, 0, experts);
        for (int r = 0, p = 0; r < rows; r++) {
            for (int j = 0; j < counts[r]; j++, p++) {
                int at = fill[ids[p]]++;
                pairRow[at] = r;
                pairWeight[at] = weights[p];
            }
        }
        int active = 0;
        for (int e = 0; e < experts; e++) {
            if (start[e + 1] > start[e]) {
                activeIds[active] = e;
                activeStarts[active++] = start[e];
            }
        }
        activeStarts[active] = pairs;
        if (shard.forwardCombined(layer, x, rows, pairs, pairRow, pairWeight, activeIds, activeStarts, active, out)) {
            return;
        }
        // Each expert's rows through it as one batch (scratch reused across messages), combined here.
        Arrays.fill(out, 0, rows * hidden, 0.0);
        for (int i = 0; i < active; i++) {
            int from = activeStarts[i];
            int batch = activeStarts[i + 1] - from;
            ensureScratch(batch * hidden);
            for (int b = 0; b < batch; b++) {
                System.arraycopy(x, pairRow[from + b] * hidden, xs, b * hidden, hidden);
            }
            shard.apply(layer, activeIds[i], xs, batch, ys);
            for (int b = 0; b < batch; b++) {
                float w = pairWeight[from + b];
                int o = pairRow[from + b] * hidden;
                int yo = b * hidden;
                for (int c = 0; c < hidden; c++) {
                    out[o + c] += w * ys[yo + c]; // float product, double sum
                }
            }
        }
    }

    private void ensureScratch(int n) {
        if (xs.length < n) {
            xs = new float[n];
            ys = new float[n];
        }
    }
}
