package dev.epic.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.VectorOps;
import dev.epic.kernels.cuda.Cuda;
import dev.epic.kernels.cuda.CudaDevice;
import dev.epic.model.Golden;
import dev.epic.model.KvCache;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Routed experts on the GPU against the CPU shard and against DeepSeek's reference logits, for the
 * bf16 and fp8 test checkpoints. Runs where a GPU is (see README, "CUDA").
 */
@EnabledIf("dev.epic.kernels.cuda.Cuda#available")
class CudaShardTest {
    /** The engine's golden tolerance (Golden.LOGIT_TOL, measured 1.4e-5 on an H200): the GPU path is held to the fp32 one. */
    static final float LOGIT_TOL = 3e-5f;
    static final double ROW_TOL = 1e-5;
    /** bf16 activations on the tensor cores: their own tolerance, 1e-2 of a row's norm. */
    static final double BF16_ROW_TOL = 1e-2;
    private static CudaDevice device;

    @BeforeAll
    static void open() {
        device = CudaDevice.open(0);
    }

    @AfterAll
    static void close() {
        device.close();
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void messagesMatchTheCpuShard(String model) {
        try (Checkpoint c = Checkpoint.open(TestData.model(model))) {
            ModelConfig cfg = c.config();
            int[] hosted = IntStream.range(0, cfg.nRoutedExperts()).filter(e -> e % 3 != 1).toArray();
            CheckpointShard cpu = CheckpointShard.load(c, hosted);
            try (CudaShard gpu = CudaShard.load(c, hosted, device)) {
                assertEquals(cpu.residentBytes(), gpu.residentBytes(), "weight and scale bytes");
                int hidden = cfg.hiddenSize();
                int layer = IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).findFirst().orElseThrow();
                SplittableRandom r = new SplittableRandom(model.length());
                // 1 row (decode), a few, and 400 rows so that popular experts take the cuBLAS path
                for (int rows : new int[] {1, 7, 400}) {
                    float[] x = new float[rows * hidden];
                    for (int i = 0; i < x.length; i++) {
                        x[i] = (float) r.nextGaussian();
                    }
                    int k = 4;
                    int[] counts = new int[rows];
                    int[] ids = new int[rows * k];
                    float[] w = new float[rows * k];
                    for (int i = 0; i < rows; i++) {
                        // skewed routing: a third of the rows share expert 0's neighbours
                        int[] pick = i % 3 == 0 ? new int[] {0, 2, 3, 5}
                                : r.ints(0, hosted.length).distinct().limit(k).map(j -> hosted[j]).sorted().toArray();
                        counts[i] = k;
                        for (int j = 0; j < k; j++) {
                            ids[i * k + j] = pick[j];
                            w[i * k + j] = (float) r.nextDouble(0.1, 1);
                        }
                    }
                    double[] want = new double[rows * hidden];
                    double[] got = new double[rows * hidden];
                    new ShardExecutor(cpu).forward(layer, x, rows, counts, ids, w, want);
                    new ShardExecutor(gpu.activations(CudaShard.Activations.FP32)).forward(layer, x, rows, counts, ids,
                            w, got);
                    double worst = assertRowsClose(want, got, rows, hidden, ROW_TOL, model + " rows " + rows);
                    new ShardExecutor(gpu.activations(CudaShard.Activations.BF16)).forward(layer, x, rows, counts, ids,
                            w, got);
                    double worstBf16 = assertRowsClose(want, got, rows, hidden, BF16_ROW_TOL,
                            model + " rows " + rows + " bf16 activations");
                    gpu.activations(CudaShard.Activations.FP32);
                    org.slf4j.LoggerFactory.getLogger(CudaShardTest.class).info(
                            "{} rows {}: worst row error fp32 {}, bf16 activations {}", model, rows, worst, worstBf16);
                }
            }
        }
    }

    /** Per row: ||got - want|| <= tol * ||want||; returns the worst. */
    static double assertRowsClose(double[] want, double[] got, int rows, int hidden, double tol, String what) {
        double worst = 0;
        for (int i = 0; i < rows; i++) {
            double err = 0;
            double norm = 0;
            for (int c = 0; c < hidden; c++) {
                double d = got[i * hidden + c] - want[i * hidden + c];
                err += d * d;
                norm += want[i * hidden + c] * want[i * hidden + c];
            }
            double rel = Math.sqrt(err / norm);
            assertTrue(rel <= tol, what + " row " + i + " relative error " + rel);
            worst = Math.max(worst, rel);
        }
        return worst;
    }

    /** The uncombined path (one output per pair), which single-expert calls and benchmarks take. */
    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void applyAllMatchesTheCpuShard(String model) {
        try (Checkpoint c = Checkpoint.open(TestData.model(model))) {
            ModelConfig cfg = c.config();
            int[] hosted = {3, 4, 9, cfg.nRoutedExperts() - 1};
            CheckpointShard cpu = CheckpointShard.load(c, hosted);
            try (CudaShard gpu = CudaShard.load(c, hosted, device)) {
                int hidden = cfg.hiddenSize();
                int layer = IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).findFirst().orElseThrow();
                int[] starts = {0, 1, 21, 21, 24}; // 1, 20 (cuBLAS), 0 and 3 rows
                float[] xs = new float[24 * hidden];
                SplittableRandom r = new SplittableRandom(5);
                for (int i = 0; i < xs.length; i++) {
                    xs[i] = (float) r.nextGaussian();
                }
                float[] want = new float[xs.length];
                float[] got = new float[xs.length];
                java.util.Arrays.fill(got, Float.NaN);
                for (int i = 0; i < 4; i++) { // the CPU shard one expert at a time
                    int rows = starts[i + 1] - starts[i];
                    if (rows > 0) {
                        float[] y = new float[rows * hidden];
                        cpu.apply(layer, hosted[i], java.util.Arrays.copyOfRange(xs, starts[i] * hidden,
                                starts[i + 1] * hidden), rows, y);
                        System.arraycopy(y, 0, want, starts[i] * hidden, y.length);
                    }
                }
                gpu.applyAll(layer, hosted, starts, 4, xs, got);
                for (int row = 0; row < 24; row++) {
                    double err = 0;
                    double norm = 0;
                    for (int c2 = 0; c2 < hidden; c2++) {
                        double d = got[row * hidden + c2] - want[row * hidden + c2];
                        err += d * d;
                        norm += (double) want[row * hidden + c2] * want[row * hidden + c2];
                    }
                    assertTrue(Math.sqrt(err / norm) <= ROW_TOL, model + " row " + row + " relative error "
                            + Math.sqrt(err / norm));
                }
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void transformerWithGpuExpertsMatchesTheReference(String model) {
        try (Checkpoint c = Checkpoint.open(TestData.model(model))) {
            ModelConfig cfg = c.config();
            int[] all = IntStream.range(0, cfg.nRoutedExperts()).toArray();
            try (CudaShard gpu = CudaShard.load(c, all, device)) {
                Transformer t = new Transformer(cfg, c, new ShardExperts(gpu));
                List<Golden.Prompt> prompts = Golden.of(model).prompts();
                float worst = 0;
                for (int p = 0; p < prompts.size(); p++) {
                    Golden.Prompt g = prompts.get(p);
                    KvCache cache = t.newCache();
                    float[] logits = t.forward(cache, g.tokens());
                    float diff = Golden.maxAbsDiff(g.prefillLogits(), logits);
                    assertTrue(diff <= LOGIT_TOL, model + " prompt " + p + " prefill max abs diff " + diff);
                    worst = Math.max(worst, diff);
                    int[] tokens = new int[g.greedyTokens().length];
                    for (int s = 0; s < tokens.length; s++) {
                        tokens[s] = VectorOps.argmax(logits);
                        logits = t.forward(cache, tokens[s]);
                        diff = Golden.maxAbsDiff(g.stepLogits()[s], logits);
                        assertTrue(diff <= LOGIT_TOL, model + " prompt " + p + " step " + s + " max abs diff " + diff);
                        worst = Math.max(worst, diff);
                    }
                    assertArrayEquals(g.greedyTokens(), tokens, model + " prompt " + p + " greedy tokens");
                }
                org.slf4j.LoggerFactory.getLogger(CudaShardTest.class)
                        .info("{} with experts on {}: max abs logit diff vs reference {}", model, device, worst);
            }
        }
    }
}
