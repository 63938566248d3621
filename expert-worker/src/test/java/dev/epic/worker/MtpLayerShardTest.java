package dev.epic.worker;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.quant.WeightFormat;
import java.util.SplittableRandom;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * A CPU shard that hosts its experts of the checkpoint's multi-token-prediction layer too
 * (--mtp-layer): tiny-v3 has one (layer num_hidden_layers); tiny-v3-fp8 has none.
 */
class MtpLayerShardTest {
    private static final int[] HOSTED = {1, 5, 6};
    private static Checkpoint checkpoint;
    private static Checkpoint withoutMtp;

    @BeforeAll
    static void open() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
        withoutMtp = Checkpoint.open(TestData.model("tiny-v3-fp8"));
    }

    @AfterAll
    static void close() {
        checkpoint.close();
        withoutMtp.close();
    }

    @Test
    void itsMtpLayerExpertsComputeAsTheCheckpointsLayer() {
        ModelConfig c = checkpoint.config();
        int mtp = c.numHiddenLayers();
        CheckpointShard shard = CheckpointShard.load(checkpoint, HOSTED, WeightFormat.AUTO, true);
        assertTrue(shard.hostsMtpLayer());
        assertTrue(shard.isMoeLayer(mtp));
        assertFalse(shard.isMoeLayer(mtp + 1));
        assertFalse(shard.hosts(mtp, 2), "only its own ids");
        LocalExperts reference = LocalExperts.layer(c, checkpoint, mtp);
        int rows = 3;
        int hidden = c.hiddenSize();
        float[] x = new float[rows * hidden];
        SplittableRandom r = new SplittableRandom(7);
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        for (int e : HOSTED) {
            assertTrue(shard.hosts(mtp, e));
            float[] y = new float[rows * hidden];
            shard.apply(mtp, e, x, rows, y);
            float[] expected = new float[rows * hidden];
            int[] ids = {e, e, e};
            reference.forward(mtp, x, rows, ids, new float[] {1, 1, 1}, 1, expected);
            assertArrayEquals(expected, y, "expert " + e + " of the MTP layer");
            // Not a decoder layer's expert of the same id.
            float[] decoder = new float[rows * hidden];
            shard.apply(c.firstKDenseReplace(), e, x, rows, decoder);
            assertFalse(java.util.Arrays.equals(decoder, y));
        }
    }

    @Test
    void withoutTheFlagTheMtpLayerIsNotHosted() {
        int mtp = checkpoint.config().numHiddenLayers();
        CheckpointShard shard = CheckpointShard.load(checkpoint, HOSTED, WeightFormat.AUTO);
        assertFalse(shard.hostsMtpLayer());
        assertFalse(shard.isMoeLayer(mtp));
        assertFalse(shard.hosts(mtp, 1));
        float[] x = new float[shard.hiddenSize()];
        assertThrows(IllegalArgumentException.class, () -> shard.apply(mtp, 1, x, 1, new float[x.length]));
    }

    @Test
    void aCheckpointWithoutAnMtpLayerIsRefusedByName() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> CheckpointShard.load(withoutMtp, HOSTED, WeightFormat.AUTO, true));
        assertTrue(e.getMessage().contains("num_nextn_predict_layers is 0"), e.getMessage());
        assertTrue(e.getMessage().contains("tiny-v3-fp8"), e.getMessage());
        assertEquals(null, CheckpointShard.mtpLayerMissing(checkpoint.config()));
    }
}
