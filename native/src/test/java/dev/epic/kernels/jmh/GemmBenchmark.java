package dev.epic.kernels.jmh;

import dev.epic.kernels.Matrix;
import java.lang.foreign.Arena;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;

/** Batched matmul (prefill / expert batches); the "flops" aux counter is the GFLOP/s figure. */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
public class GemmBenchmark {
    @Param({"bf16", "fp8", "q8", "q4"})
    public String format;

    @Param({"1024x1024", "256x1024"})
    public String shape;

    @Param({"32", "512"})
    public int batch;

    private Arena arena;
    Matrix m;
    float[] x;
    float[] out;

    @Setup(Level.Trial)
    public void setup() {
        String[] s = shape.split("x");
        arena = Arena.ofShared();
        m = SyntheticWeights.make(format, Integer.parseInt(s[0]), Integer.parseInt(s[1]), arena);
        x = new float[batch * m.cols()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i);
        }
        out = new float[batch * m.rows()];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Work {
        public long flops;
    }

    @Benchmark
    public float gemm(Work w) {
        m.matmul(x, out, batch);
        w.flops += 2L * batch * m.rows() * m.cols();
        return out[0];
    }
}
