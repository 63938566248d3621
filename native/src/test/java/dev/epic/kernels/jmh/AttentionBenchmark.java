package dev.epic.kernels.jmh;

import dev.epic.kernels.Bf16;
import dev.epic.kernels.Exp;
import dev.epic.kernels.LatentAttention;
import dev.epic.kernels.VectorOps;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;

/**
 * One query row's absorbed-MLA decode passes over a latent cache (one thread), fp32 and bf16
 * ({@code --kv-cache-dtype bf16}: half the bytes), and the exp they and SwiGLU use. Shapes: bench-v3 (8 heads, rank 256, rope 32) and V3's per-16-heads slice (rank 512,
 * rope 64) at a few context lengths.
 */
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@State(Scope.Benchmark)
public class AttentionBenchmark {
    @Param({"8x256x32", "16x512x64"})
    public String heads_rank_rope;

    @Param({"512", "4096"})
    public int positions;

    private int heads;
    private int rank;
    private int rope;
    private float[] lat;
    private float[] pe;
    private float[] qLat;
    private float[] qPe;
    private float[] scores;
    private float[] ctx;
    private float[] exps;
    private short[] lat16;
    private short[] pe16;

    @Setup
    public void setup() {
        String[] s = heads_rank_rope.split("x");
        heads = Integer.parseInt(s[0]);
        rank = Integer.parseInt(s[1]);
        rope = Integer.parseInt(s[2]);
        SplittableRandom rnd = new SplittableRandom(1);
        lat = random(rnd, positions * rank);
        pe = random(rnd, positions * rope);
        qLat = random(rnd, heads * rank);
        qPe = random(rnd, heads * rope);
        scores = random(rnd, heads * positions);
        ctx = new float[heads * rank];
        exps = new float[heads * positions];
        lat16 = new short[lat.length];
        pe16 = new short[pe.length];
        Bf16.round(lat, 0, lat16, 0, lat.length);
        Bf16.round(pe, 0, pe16, 0, pe.length);
    }

    private static float[] random(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    @Benchmark
    public float[] scores() {
        LatentAttention.scores(lat, 0, rank, pe, 0, rope, positions, qLat, 0, qPe, 0, rope, heads, scores, 0, positions);
        return scores;
    }

    @Benchmark
    public float[] contexts() {
        LatentAttention.contexts(scores, 0, positions, heads, lat, 0, rank, positions, ctx, 0, 0, rank);
        return ctx;
    }

    @Benchmark
    public float[] scoresBf16() {
        LatentAttention.scores(lat16, 0, rank, pe16, 0, rope, positions, qLat, 0, qPe, 0, rope, heads, scores, 0,
                positions);
        return scores;
    }

    @Benchmark
    public float[] contextsBf16() {
        LatentAttention.contexts(scores, 0, positions, heads, lat16, 0, rank, positions, ctx, 0, 0, rank);
        return ctx;
    }

    @Benchmark
    public float[] softmax() {
        System.arraycopy(scores, 0, exps, 0, exps.length);
        for (int h = 0; h < heads; h++) {
            VectorOps.softmax(exps, h * positions, positions);
        }
        return exps;
    }

    @Benchmark
    public float[] exp() {
        Exp.apply(scores, 0, exps, 0, exps.length, 1f, -1f);
        return exps;
    }
}
