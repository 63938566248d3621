package dev.epic.kernels;

import java.lang.foreign.Arena;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.State;

/**
 * Dispatch cost for one expert-sized GEMV (bf16 256x1024, ~40 us of work on one core): caller only,
 * {@link Parallel} (persistent spinning workers) and a ForkJoin task per call, back to back and with
 * an idle gap (what decode looks like between layers).
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@State(Scope.Benchmark)
public class ParallelBenchmark {
    /** Microseconds of idle time between calls (0: back to back). */
    @Param({"0", "200"})
    public int gapMicros;

    private Arena arena;
    private DenseMatrix m;
    private float[] x;
    private float[] out;

    @Setup(Level.Trial)
    public void setup() {
        arena = Arena.ofShared();
        m = (DenseMatrix) Matrices.bf16(arena.allocate(2L * 256 * 1024, 64), 256, 1024);
        x = new float[1024];
        out = new float[256];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    private void gap() {
        if (gapMicros > 0) {
            long end = System.nanoTime() + gapMicros * 1000L;
            while (System.nanoTime() < end) {
                Thread.onSpinWait();
            }
        }
    }

    @Benchmark
    public float callerOnly() {
        gap();
        m.gemv(x, 0, out, 0, 0, 256);
        return out[0];
    }

    @Benchmark
    public float epicPool() {
        gap();
        m.matmul(x, out, 1);
        return out[0];
    }

    @Benchmark
    public float forkJoinPerCall() {
        gap();
        ForkJoinTask<?> half = ForkJoinPool.commonPool().submit(() -> m.gemv(x, 0, out, 0, 128, 256));
        m.gemv(x, 0, out, 0, 0, 128);
        half.join();
        return out[0];
    }
}
