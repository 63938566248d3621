package dev.epic.coordinator.experts;

/**
 * The rows of one forward call routed to one worker: which global rows, and per row the
 * (expert, gate weight) pairs that worker applies. Grows as needed and is reused across calls.
 */
final class Batch {
    final WorkerEndpoint endpoint;
    int rows;
    int pairs;
    int[] rowIndex = new int[16];
    int[] counts = new int[16];
    int[] ids = new int[64];
    float[] weights = new float[64];
    /** Gathered input rows, then the decoded output rows: [rows x hidden]. */
    float[] x = new float[0];
    /** Why the last send of this batch failed (retry bookkeeping). */
    Throwable failure;
    /** The forward call this scratch batch was last filled for. */
    int call = -1;
    private int lastRow = -1;

    Batch(WorkerEndpoint endpoint) {
        this.endpoint = endpoint;
    }

    void clear() {
        rows = 0;
        pairs = 0;
        lastRow = -1;
    }

    boolean isEmpty() {
        return pairs == 0;
    }

    /** Adds pair (expert, weight) to global row `row`; rows must arrive in ascending order. */
    void add(int row, int expert, float weight) {
        if (row != lastRow) {
            if (rows == rowIndex.length) {
                rowIndex = java.util.Arrays.copyOf(rowIndex, rows * 2);
                counts = java.util.Arrays.copyOf(counts, rows * 2);
            }
            rowIndex[rows] = row;
            counts[rows] = 0;
            rows++;
            lastRow = row;
        }
        if (pairs == ids.length) {
            ids = java.util.Arrays.copyOf(ids, pairs * 2);
            weights = java.util.Arrays.copyOf(weights, pairs * 2);
        }
        ids[pairs] = expert;
        weights[pairs] = weight;
        pairs++;
        counts[rows - 1]++;
    }

    float[] rowBuffer(int hidden) {
        int n = rows * hidden;
        if (x.length < n) {
            x = new float[Math.max(n, x.length * 2)];
        }
        return x;
    }
}
