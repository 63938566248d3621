package dev.epic.model.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.TestData;
import dev.epic.model.config.ModelConfig;
import org.junit.jupiter.api.Test;

class YarnRopeTest {
    @Test
    void tinyV3FrequenciesFollowTheRamp() {
        ModelConfig c = ModelConfig.load(TestData.model("tiny-v3"));
        float[] f = Yarn.inverseFrequencies(c);
        // d = 8: low 1, high 3, ramp = [0, 0, 0.5, 1]
        double[] base = {1, Math.pow(10000, -0.25), Math.pow(10000, -0.5), Math.pow(10000, -0.75)};
        assertEquals(base[0], f[0], 1e-7);
        assertEquals(base[1], f[1], 1e-7);
        assertEquals(base[2] / 40 * 0.5 + base[2] * 0.5, f[2], 1e-7);
        assertEquals(base[3] / 40, f[3], 1e-9);
        double mscale = 0.1 * Math.log(40) + 1;
        assertEquals(1.368888, mscale, 1e-6);
        assertEquals(mscale * mscale / Math.sqrt(24), Yarn.softmaxScale(c), 1e-6);
        assertEquals(1f, Yarn.cosSinScale(c));
    }

    @Test
    void noScalingWithoutRopeScaling() throws Exception {
        ObjectNode n = (ObjectNode) new ObjectMapper().readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.putNull("rope_scaling");
        ModelConfig c = ModelConfig.parse(n, "t");
        assertEquals((float) Math.pow(10000, -0.75), Yarn.inverseFrequencies(c)[3]);
        assertEquals((float) (1 / Math.sqrt(24)), Yarn.softmaxScale(c));
    }

    @Test
    void ropeRotatesInterleavedPairs() {
        Rope rope = new Rope(new float[] {1f, 0.5f}, 1f);
        float[] x = {1, 0, 0, 2};
        rope.apply(x, 0, 2);
        assertArrayEquals(new float[] {(float) Math.cos(2), (float) Math.sin(2), -2 * (float) Math.sin(1),
                2 * (float) Math.cos(1)}, x, 1e-6f);
        float[] y = {3, 4};
        new Rope(new float[] {0.3f}, 1f).apply(y, 0, 0);
        assertArrayEquals(new float[] {3, 4}, y, 0f);
    }
}
