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
            assertEquals("expert 2 is not hosted by this worker (hosts 1,5-7,20,33,63)", e.getMessage());
            assertThrows(IllegalArgumentException.class, () -> new ShardExecutor(shard)
                    .forward(0, x, 1, new int[] {1}, new int[] {1}, new float[] {1f}, new double[hidden]));
        }
    }
}
