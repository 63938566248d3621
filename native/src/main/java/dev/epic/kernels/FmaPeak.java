package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Compute peak probe: all kernel threads run independent chains of fp32 vector FMAs on registers (no
 * memory traffic). Every kernel here multiplies in fp32 after widening, so this bounds any step's
 * speed from above the way {@link Bandwidth} does for its weight traffic: tokens/s can never exceed
 * this number over a token's flops.
 */
public final class FmaPeak {
    private static final int UNITS_PER_THREAD = 8;
    private static final int ITERATIONS = 2_000_000; // ~8 GFLOP a pass on 2 threads: long against a wake-up
    private static volatile float sink;

    private FmaPeak() {}

    /** Best-of-{@code passes} fp32 FMA throughput of the kernel threads in GFLOP/s (an FMA counts 2); about 35 ms a pass on this class of machine. */
    public static double measureGFlops(int passes) {
        int units = Parallel.threads() * UNITS_PER_THREAD;
        float[] partial = new float[units];
        double best = 0;
        for (int p = 0; p < passes; p++) {
            long t0 = System.nanoTime();
            Parallel.forRange(units, 1, Long.MAX_VALUE, (u0, u1) -> {
                for (int u = u0; u < u1; u++) {
                    partial[u] = chains(u);
                }
            });
            long t1 = System.nanoTime();
            best = Math.max(best, (double) units * ITERATIONS * 8 * L * 2 / (t1 - t0));
        }
        float total = 0;
        for (float v : partial) {
            total += v;
        }
        sink = total;
        return best;
    }

    /** Eight independent FMA chains: enough to cover the FMA latency on current x86 and Arm cores. */
    private static float chains(int seed) {
        FloatVector m = FloatVector.broadcast(F, 0.999f);
        FloatVector c = FloatVector.broadcast(F, 1e-3f * (seed + 1));
        FloatVector a0 = c, a1 = c.add(1), a2 = c.add(2), a3 = c.add(3);
        FloatVector a4 = c.add(4), a5 = c.add(5), a6 = c.add(6), a7 = c.add(7);
        for (int i = 0; i < ITERATIONS; i++) {
            a0 = a0.fma(m, c);
            a1 = a1.fma(m, c);
            a2 = a2.fma(m, c);
            a3 = a3.fma(m, c);
            a4 = a4.fma(m, c);
            a5 = a5.fma(m, c);
            a6 = a6.fma(m, c);
            a7 = a7.fma(m, c);
        }
        return a0.add(a1).add(a2.add(a3)).add(a4.add(a5).add(a6.add(a7))).reduceLanes(VectorOperators.ADD);
    }
}
