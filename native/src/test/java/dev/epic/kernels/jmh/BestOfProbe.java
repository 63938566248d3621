package dev.epic.kernels.jmh;

import dev.epic.kernels.Matrix;
import java.lang.foreign.Arena;

/**
 * Fastest-of-N matmul timings, which a shared, busy machine disturbs far less than JMH's means:
 * {@code BestOfProbe rows cols batch format...} (formats f32, bf16, fp8, q8, q4), warms up, then runs each for
 * {@code -Dprobe.seconds} (default 2) and prints weight GB/s and GFLOP/s of the fastest call.
 */
public final class BestOfProbe {
    private BestOfProbe() {}

    public static void main(String[] a) {
        int rows = Integer.parseInt(a[0]), cols = Integer.parseInt(a[1]), batch = Integer.parseInt(a[2]);
        long budget = (long) (Double.parseDouble(System.getProperty("probe.seconds", "2")) * 1e9);
        for (int f = 3; f < a.length; f++) {
            try (Arena arena = Arena.ofShared()) {
                Matrix m = SyntheticWeights.make(a[f], rows, cols, arena);
                float[] x = new float[batch * cols];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) Math.sin(i);
                }
                float[] out = new float[batch * rows];
                // Warm-up (uncounted): Vector API code is only fast once C2 has compiled it.
                long warm = System.nanoTime();
                for (int i = 0; i < 300 || System.nanoTime() - warm < budget / 2; i++) {
                    m.matmul(x, out, batch);
                }
                long best = Long.MAX_VALUE;
                long start = System.nanoTime();
                int n = 0;
                while (System.nanoTime() - start < budget || n < 5) {
                    long t0 = System.nanoTime();
                    m.matmul(x, out, batch);
                    best = Math.min(best, System.nanoTime() - t0);
                    n++;
                }
                System.out.printf("%-5s %dx%d batch %d: best %.1f us  %.1f GB/s  %.1f GFLOP/s  (%d runs)%n", a[f], rows,
                        cols, batch, best / 1e3, m.storageBytes() / (double) best,
                        2.0 * batch * rows * cols / best, n);
            }
        }
    }
}
