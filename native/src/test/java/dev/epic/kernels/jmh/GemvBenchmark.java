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

/**
 * Batch-1 matmul (decode). The aux counters turn ops/s into weight bytes/s ("bytes", compare with
 * the bandwidth probe) and flop/s ("flops").
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@State(Scope.Benchmark)
public class GemvBenchmark {
    @Param({"bf16", "fp8", "q8", "q4"})
    public String format;

    /** 1024x1024 (attention-sized), 256x1024 (one routed expert), 129280x1024 (lm_head). */
    @Param({"1024x1024", "256x1024", "129280x1024"})
    public String shape;

    private Arena arena;
    Matrix m;
    float[] x;
    float[] out;

    @Setup(Level.Trial)
    public void setup() {
        String[] s = shape.split("x");
        arena = Arena.ofShared();
        m = SyntheticWeights.make(format, Integer.parseInt(s[0]), Integer.parseInt(s[1]), arena);
        x = new float[m.cols()];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) Math.sin(i);
        }
        out = new float[m.rows()];
    }

    @TearDown(Level.Trial)
    public void tearDown() {
        arena.close();
    }

    @AuxCounters(AuxCounters.Type.OPERATIONS)
    @State(Scope.Thread)
    public static class Traffic {
        public long bytes;
        public long flops;
    }

    @Benchmark
    public float gemv(Traffic t) {
        m.matmul(x, out, 1);
        t.bytes += m.storageBytes();
        t.flops += 2L * m.rows() * m.cols();
        return out[0];
    }
}
