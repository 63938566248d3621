package dev.epic.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import java.util.Arrays;
import java.util.SplittableRandom;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The worker's batched, pre-reduced shard computation against the engine's local experts. */
class ShardExecutorTest {
    @Test
    void variableExpertCountsPerRowMatchLocalHostedPartialSums() {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            ModelConfig cfg = c.config();
            int[] hosted = {1, 5, 6, 7, 20, 33, 63};
            CheckpointShard shard = CheckpointShard.load(c, hosted);
            assertTrue(shard.residentBytes() > 0);
            LocalExperts local = LocalExperts.subset(cfg, c,
                    Arrays.stream(hosted).boxed().collect(Collectors.toSet()));
            int hidden = cfg.hiddenSize();
            int k = cfg.numExpertsPerTok();
            int rows = 9;
            SplittableRandom r = new SplittableRandom(11);
            float[] x = new float[rows * hidden];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            int[] ids = new int[rows * k];
            float[] w = new float[rows * k];
            for (int i = 0; i < rows; i++) {
                int[] pick = r.ints(0, cfg.nRoutedExperts()).distinct().limit(k).toArray();
                if (i % 3 == 0) {
                    pick = new int[] {5, 6, 7, 8, 9, 10}; // several rows share hosted experts (k = 6)
                }
                for (int j = 0; j < k; j++) {
                    ids[i * k + j] = pick[j];
                    w[i * k + j] = (float) r.nextDouble(0.1, 1);
                }
            }
            // the message a coordinator sends: per row only the hosted experts
            int[] counts = new int[rows];
            int[] sendIds = new int[rows * k];
            float[] sendW = new float[rows * k];
            int p = 0;
            for (int i = 0; i < rows; i++) {
                for (int j = 0; j < k; j++) {
                    if (Arrays.binarySearch(hosted, ids[i * k + j]) >= 0) {
                        counts[i]++;
                        sendIds[p] = ids[i * k + j];
                        sendW[p++] = w[i * k + j];
                    }
                }
            }
            assertTrue(p > rows / 2, "test routes real work to the shard");
            float[] expected = new float[rows * hidden];
            local.forwardHosted(2, x, rows, ids, w, k, expected);
            double[] sums = new double[rows * hidden];
            new ShardExecutor(shard).forward(2, x, rows, counts, sendIds, sendW, sums);
            float[] out = new float[rows * hidden];
            for (int i = 0; i < out.length; i++) {
                out[i] = (float) sums[i];
            }
            // Same float terms, same exact double sum: bit for bit what the in-process shard computes.
            assertArrayEquals(expected, out);

            var e = assertThrows(IllegalArgumentException.class, () -> new ShardExecutor(shard)
                    .forward(2, x, 1, new int[] {1}, new int[] {2}, new float[] {1f}, new double[hidden]));
            assertEquals("expert 2 is not hosted by this worker in layer 2 (hosts 1,5-7,20,33,63 in every layer)", e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new ShardExecutor(shard)
                    .forward(0, x, 1, new int[] {1}, new int[] {1}, new float[] {1f}, new double[hidden]));
        }
    }

    /** Redundant experts: hosted in their layer only, computed like the own ones, the last placement's kept one round. */
    /** Before it announces itself a worker runs its experts' kernels (each matrix, 7 batch sizes, 500 rounds): answers unchanged. */
    @Test
    void warmUpRunsAnExpertsKernelsAndChangesNoAnswer() {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            CheckpointShard shard = CheckpointShard.load(c, new int[] {3, 9});
            int hidden = c.config().hiddenSize();
            SplittableRandom r = new SplittableRandom(5);
            float[] x = new float[4 * hidden];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            float[] before = new float[x.length];
            shard.apply(1, 9, x, 4, before);
            assertEquals(3 * 7 * 500, shard.warmUp());
            float[] after = new float[x.length];
            shard.apply(1, 9, x, 4, after);
            assertArrayEquals(before, after);
            assertEquals(0, CheckpointShard.load(c, new int[0]).warmUp(), "no expert: nothing to run");
        }
    }

    @Test
    void redundantExpertsServeTheirLayerAndOutliveOnePlacement() {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3"))) {
            ModelConfig cfg = c.config();
            CheckpointShard shard = CheckpointShard.load(c, new int[] {1, 2});
            long own = shard.residentBytes();
            shard.redundant(java.util.Map.of(2, new int[] {5, 2})); // 2 is its own already
            assertTrue(shard.hosts(2, 5) && shard.hosts(3, 1));
            int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
            assertEquals(own / (2 * moeLayers), shard.residentBytes() - own, "one expert, in one layer");
            int hidden = cfg.hiddenSize();
            float[] x = new float[3 * hidden];
            SplittableRandom r = new SplittableRandom(4);
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) r.nextGaussian();
            }
            int k = cfg.numExpertsPerTok();
            int[] ids = new int[3 * k];
            float[] w = new float[3 * k];
            for (int i = 0; i < 3; i++) {
                for (int j = 0; j < k; j++) {
                    ids[i * k + j] = j == 0 ? 5 : j == 1 ? 1 : 100 + j; // only 5 and 1 are sent to this shard
                    w[i * k + j] = 0.1f * (j + 1);
                }
            }
            float[] expected = new float[x.length];
            LocalExperts.subset(cfg, c, java.util.Set.of(1, 5)).forwardHosted(2, x, 3, ids, w, k, expected);
            double[] sums = new double[x.length];
            int[] counts = {2, 2, 2};
            int[] sendIds = {5, 1, 5, 1, 5, 1};
            float[] sendW = {0.1f, 0.2f, 0.1f, 0.2f, 0.1f, 0.2f};
            new ShardExecutor(shard).forward(2, x, 3, counts, sendIds, sendW, sums);
            for (int i = 0; i < x.length; i++) {
                assertEquals(expected[i], (float) sums[i], "element " + i);
            }
            long placed = shard.residentBytes();
            shard.redundant(java.util.Map.of(2, new int[] {6}));
            assertTrue(shard.residentBytes() == placed, "one expert for another");
            // Rows a coordinator still routes by an older placement are computed, not refused (a
            // refusal would end its stream and take this worker's own experts down too).
            shard.redundant(java.util.Map.of());
            shard.redundant(java.util.Map.of());
            assertEquals(own, shard.residentBytes());
            assertTrue(shard.hosts(2, 5) && shard.hosts(3, 200) && !shard.hosts(0, 5), "any expert of a MoE layer");
            java.util.Arrays.fill(sums, 0);
            new ShardExecutor(shard).forward(2, x, 3, counts, sendIds, sendW, sums);
            for (int i = 0; i < x.length; i++) {
                assertEquals(expected[i], (float) sums[i], "on demand, element " + i);
            }
            assertThrows(IllegalArgumentException.class, () -> shard.redundant(java.util.Map.of(0, new int[] {5})));
        }
    }
}
