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
    /** expert id -> dense slot among hosted experts, -1 if not hosted. */
    private final int[] slotOf;
    private final int[] hosted;
    private int[] slotCount;
    private int[] slotStart;
    private int[] pairRow = new int[0];
    private float[] pairWeight = new float[0];
    private float[] xs = new float[0];
    private float[] ys = new float[0];

    public ShardExecutor(ExpertShard shard) {
        this.shard = shard;
        this.hidden = shard.hiddenSize();
        this.hosted = shard.experts();
        int max = hosted.length == 0 ? 0 : hosted[hosted.length - 1] + 1;
        this.slotOf = new int[max];
        Arrays.fill(slotOf, -1);
        for (int s = 0; s < hosted.length; s++) {
            slotOf[hosted[s]] = s;
        }
        this.slotCount = new int[hosted.length];
        this.slotStart = new int[hosted.length + 1];
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
        // Counting sort of (row, weight) pairs by expert slot.
        Arrays.fill(slotCount, 0);
        for (int p = 0; p < pairs; p++) {
            int e = ids[p];
            if (e < 0 || e >= slotOf.length || slotOf[e] < 0) {
                throw new IllegalArgumentException("expert " + e + " is not hosted by this worker (hosts "
                        + dev.epic.transport.ExpertRanges.format(hosted) + ")");
            }
            slotCount[slotOf[e]]++;
        }
        slotStart[0] = 0;
        for (int s = 0; s < hosted.length; s++) {
            slotStart[s + 1] = slotStart[s] + slotCount[s];
        }
        if (pairRow.length < pairs) {
            pairRow = new int[pairs];
            pairWeight = new float[pairs];
        }
        int[] fill = slotCount; // reused as write cursors
        System.arraycopy(slotStart, 0, fill, 0, hosted.length);
        for (int r = 0, p = 0; r < rows; r++) {
            for (int j = 0; j < counts[r]; j++, p++) {
                int at = fill[slotOf[ids[p]]]++;
                pairRow[at] = r;
                pairWeight[at] = weights[p];
            }
        }
        Arrays.fill(out, 0, rows * hidden, 0.0);
        for (int s = 0; s < hosted.length; s++) {
            int from = slotStart[s];
            int batch = slotStart[s + 1] - from;
            if (batch == 0) {
                continue;
            }
            ensureScratch(batch * hidden);
            for (int b = 0; b < batch; b++) {
                System.arraycopy(x, pairRow[from + b] * hidden, xs, b * hidden, hidden);
            }
            shard.apply(layer, hosted[s], xs, batch, ys);
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
