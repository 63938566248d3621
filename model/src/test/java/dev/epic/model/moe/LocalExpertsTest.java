package dev.epic.model.moe;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import java.util.HashSet;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class LocalExpertsTest {
    @Test
    void shardsSumToAllExperts() {
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            ModelConfig c = ck.config();
            int n = c.nRoutedExperts();
            int hidden = c.hiddenSize();
            Set<Integer> even = new HashSet<>();
            Set<Integer> odd = new HashSet<>();
            IntStream.range(0, n).forEach(e -> (e % 2 == 0 ? even : odd).add(e));
            LocalExperts all = LocalExperts.all(c, ck);
            LocalExperts a = LocalExperts.subset(c, ck, even);
            LocalExperts b = LocalExperts.subset(c, ck, odd);
            assertTrue(a.hosts(1, 4));
            assertFalse(a.hosts(1, 5));
            assertFalse(a.hosts(0, 4), "layer 0 is dense");

            int rows = 5;
            int k = c.numExpertsPerTok();
            Random rnd = new Random(1);
            float[] x = new float[rows * hidden];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            int[] ids = new int[rows * k];
            float[] w = new float[rows * k];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (i * 7 + i / k) % n;
                w[i] = rnd.nextFloat();
            }
            float[] expected = new float[rows * hidden];
            all.forward(2, x, rows, ids, w, k, expected);
            float[] pa = new float[rows * hidden];
            float[] pb = new float[rows * hidden];
            a.forwardHosted(2, x, rows, ids, w, k, pa);
            b.forwardHosted(2, x, rows, ids, w, k, pb);
            for (int i = 0; i < pa.length; i++) {
                pa[i] += pb[i];
            }
            assertTrue(Golden.maxAbsDiff(expected, pa) <= 1e-5f);
            var e = assertThrows(IllegalStateException.class, () -> a.forward(2, x, rows, ids, w, k, new float[x.length]));
            assertTrue(e.getMessage().contains("not hosted"), e.getMessage());
        }
    }

    @Test
    void subsetMapsOnlyTheShardsItNeeds() {
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            // tiny-v3-fp8: layer 1's experts 0..25 and their scales live in shard 1
            new LocalExperts(ck.config(), ck, (layer, expert) -> layer == 1 && expert < 20);
            assertEquals(1, ck.mappedShards());
        }
    }
}
