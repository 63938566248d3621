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
 * ({@code --kv-cache-dtype bf16}: half the bytes), contiguous and in the KV cache's 16-position pages
 * (what the engine runs; the contiguous kernels measure what paging costs), and the exp they and SwiGLU use. Shapes: bench-v3 (8 heads, rank 256, rope 32) and V3's per-16-heads slice (rank 512,
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
    private float[][] latPages;
    private float[][] pePages;
    private short[][] lat16Pages;
    private short[][] pe16Pages;

    /** The engine's page size (KvPage.POSITIONS, in the model module). */
    private static final int PAGE = 16;

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
        latPages = new float[positions / PAGE][];
        pePages = new float[positions / PAGE][];
        lat16Pages = new short[positions / PAGE][];
        pe16Pages = new short[positions / PAGE][];
        for (int p = 0; p < positions / PAGE; p++) { // allocated one by one, as a cache's pages are
            latPages[p] = java.util.Arrays.copyOfRange(lat, p * PAGE * rank, (p + 1) * PAGE * rank);
            pePages[p] = java.util.Arrays.copyOfRange(pe, p * PAGE * rope, (p + 1) * PAGE * rope);
            lat16Pages[p] = java.util.Arrays.copyOfRange(lat16, p * PAGE * rank, (p + 1) * PAGE * rank);
            pe16Pages[p] = java.util.Arrays.copyOfRange(pe16, p * PAGE * rope, (p + 1) * PAGE * rope);
        }
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
    public float[] scoresPaged() {
        LatentAttention.scoresPaged(latPages, pePages, PAGE, rank, rope, 0, positions, qLat, 0, qPe, 0, rope, heads,
                scores, 0, positions);
        return scores;
    }

    @Benchmark
    public float[] contextsPaged() {
        LatentAttention.contextsPaged(scores, 0, positions, heads, latPages, PAGE, rank, positions, ctx, 0, 0, rank);
        return ctx;
    }

    @Benchmark
    public float[] scoresPagedBf16() {
        LatentAttention.scoresPaged(lat16Pages, pe16Pages, PAGE, rank, rope, 0, positions, qLat, 0, qPe, 0, rope, heads,
                scores, 0, positions);
        return scores;
    }

    @Benchmark
    public float[] contextsPagedBf16() {
        LatentAttention.contextsPaged(scores, 0, positions, heads, lat16Pages, PAGE, rank, positions, ctx, 0, 0, rank);
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
