package dev.epic.kernels;

import java.util.Arrays;

/**
 * Has the JIT compile a weight's kernels before a process takes traffic. Until C2 compiles them, the
 * Vector API kernels run interpreted, hundreds of times slower: a cold worker's first 1024x256 expert
 * product takes hundreds of milliseconds, and with several processes sharing the cores its first
 * long prefill chunk can miss a coordinator's deadline.
 *
 * <p>The products run on the weight's own first rows: the same storage, columns and values, so the
 * JIT profiles the very branches real products take (after a 128x128 miniature of each, JFR still
 * caught a worker running interpreted vector code in its first real request), at a small fraction of
 * the arithmetic.
 */
public final class KernelWarmup {
    /** Rows of each product: a multiple of the GEMM's tile would skip its tail, so not one. */
    static final int ROWS = 72;

    private KernelWarmup() {}

    /**
     * A view of the first {@code rows} rows of {@code m} (at most all of them): the same storage
     * class, columns and bytes. Null where {@code m} is not a CPU matrix (a GPU one has no JIT-compiled
     * kernels).
     */
    public static Matrix head(Matrix m, int rows) {
        int n = Math.min(rows, m.rows());
        return switch (m) {
            case F32Matrix f -> new F32Matrix(f.data.asSlice(0, 4L * n * f.cols), n, f.cols);
            case Bf16Matrix b -> new Bf16Matrix(b.data.asSlice(0, 2L * n * b.cols), n, b.cols);
            case F16Matrix h -> new F16Matrix(h.data.asSlice(0, 2L * n * h.cols), n, h.cols);
            case Fp8BlockMatrix p -> p.head(n);
            case Q8Matrix q -> new Q8Matrix(q.data.asSlice(0, (long) n * q.groups * q.codeBytesPerGroup),
                    q.scales.asSlice(0, 4L * n * q.groups), n, q.cols);
            case Q4Matrix q -> new Q4Matrix(q.data.asSlice(0, (long) n * q.groups * q.codeBytesPerGroup),
                    q.scales.asSlice(0, 4L * n * q.groups), n, q.cols);
            default -> null;
        };
    }

    /**
     * Runs {@code rounds} products of each batch size in {@code batches} on {@link #head} of
     * {@code m}; returns how many ran (0 for a matrix with nothing to compile).
     */
    public static int matmuls(Matrix m, int[] batches, int rounds) {
        Matrix h = head(m, ROWS);
        if (h == null) {
            return 0;
        }
        int most = Arrays.stream(batches).max().orElse(0);
        float[] x = new float[most * h.cols()];
        Arrays.fill(x, 0.5f);
        float[] out = new float[most * h.rows()];
        for (int round = 0; round < rounds; round++) {
            for (int batch : batches) {
                h.matmul(x, out, batch);
            }
        }
        return rounds * batches.length;
    }
}
