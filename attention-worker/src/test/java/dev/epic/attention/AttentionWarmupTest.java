package dev.epic.attention;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.TestData;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.SequenceRows;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class AttentionWarmupTest {
    /** The serving shapes' 26 steps a round, in caches of its own: the attention's answers after are the same bits. */
    @Test
    void runsTheServingShapesAndChangesNoAnswer() {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3"))) {
            AttentionLayers layers = AttentionLayers.load(c.config(), c);
            for (KvCacheDtype dtype : KvCacheDtype.values()) {
                float[] before = attend(layers, dtype);
                assertEquals(2 * 26, AttentionWarmup.run(layers, dtype, 256, 2));
                assertArrayEquals(before, attend(layers, dtype), dtype.id());
            }
        }
    }

    /** Layer 1's answer for 5 rows of a fresh sequence. */
    private static float[] attend(AttentionLayers layers, KvCacheDtype dtype) {
        int hidden = layers.config().hiddenSize();
        SplittableRandom r = new SplittableRandom(3);
        float[] x = new float[5 * hidden];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        KvCache cache = layers.newCache(dtype);
        float[] y = new float[x.length];
        layers.layer(1).forward(x, 5, List.of(new SequenceRows(cache, 0, 0, 5)), y);
        return y;
    }
}
