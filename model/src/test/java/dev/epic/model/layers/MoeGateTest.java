package dev.epic.model.layers;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.HeapWeights;
import dev.epic.model.TestData;
import dev.epic.model.config.ModelConfig;
import org.junit.jupiter.api.Test;

/**
 * Routing variants on a hand-checkable case: 8 experts in 4 groups of 2, keep 2 groups, pick 2
 * experts. The gate weight is the identity, so the router logits are x itself.
 */
class MoeGateTest {
    static final String P = "model.layers.1.mlp.gate.";
    static final float[] X = {3, -3, 1, 1, 0.9f, 0.9f, -2, -2};

    static ModelConfig config(String topkMethod, String scoring, boolean norm) throws Exception {
        ObjectNode n = (ObjectNode) new ObjectMapper().readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.put("hidden_size", 8);
        n.put("n_routed_experts", 8);
        n.put("n_group", 4);
        n.put("topk_group", 2);
        n.put("num_experts_per_tok", 2);
        n.put("topk_method", topkMethod);
        n.put("scoring_func", scoring);
        n.put("norm_topk_prob", norm);
        return ModelConfig.parse(n, "test");
    }

    static MoeGate gate(ModelConfig c, float[] bias) {
        float[] identity = new float[64];
        for (int i = 0; i < 8; i++) {
            identity[i * 9] = 1;
        }
        HeapWeights w = new HeapWeights().put(P + "weight", identity);
        if (bias != null) {
            w.put(P + "e_score_correction_bias", bias);
        }
        return new MoeGate(c, w, 1);
    }

    static float sigmoid(float v) {
        return (float) (1 / (1 + Math.exp(-v)));
    }

    @Test
    void noauxTcScoresGroupsByTopTwoSum() throws Exception {
        Routing r = gate(config("noaux_tc", "sigmoid", true), new float[8]).route(X, 1);
        // group sums: g0 .953+.047=1.0, g1 1.462, g2 1.422 -> groups 1 and 2; best experts 2, 3 (tie: lower id first)
        assertArrayEquals(new int[] {2, 3}, r.experts());
        assertArrayEquals(new float[] {1.25f, 1.25f}, r.weights(), 1e-6f);
    }

    @Test
    void biasSelectsButUnbiasedScoresWeigh() throws Exception {
        float[] bias = new float[8];
        bias[5] = 0.5f;
        Routing r = gate(config("noaux_tc", "sigmoid", true), bias).route(X, 1);
        assertArrayEquals(new int[] {5, 2}, r.experts());
        float s5 = sigmoid(0.9f);
        float s2 = sigmoid(1f);
        assertArrayEquals(new float[] {s5 / (s5 + s2) * 2.5f, s2 / (s5 + s2) * 2.5f}, r.weights(), 1e-6f);
    }

    @Test
    void groupLimitedGreedyScoresGroupsByMax() throws Exception {
        Routing r = gate(config("group_limited_greedy", "sigmoid", false), null).route(X, 1);
        // group max: g0 .953, g1 .731 -> experts 0 and 2; weights unnormalised
        assertArrayEquals(new int[] {0, 2}, r.experts());
        assertArrayEquals(new float[] {sigmoid(3) * 2.5f, sigmoid(1) * 2.5f}, r.weights(), 1e-6f);
    }

    @Test
    void greedySoftmaxIgnoresGroups() throws Exception {
        float[] x = {3, 2.5f, 1, 1, 0.9f, 0.9f, -2, -2};
        Routing r = gate(config("greedy", "softmax", false), null).route(x, 1);
        assertArrayEquals(new int[] {0, 1}, r.experts());
        double sum = 0;
        for (float v : x) {
            sum += Math.exp(v);
        }
        assertEquals(Math.exp(3) / sum * 2.5, r.weights()[0], 1e-6);
        assertEquals(Math.exp(2.5) / sum * 2.5, r.weights()[1], 1e-6);
    }

    @Test
    void rowsAreIndependent() throws Exception {
        MoeGate g = gate(config("noaux_tc", "sigmoid", true), new float[8]);
        float[] two = new float[16];
        System.arraycopy(X, 0, two, 8, 8);
        two[0] = 5; // row 0: expert 0 dominates group 0
        two[2] = 4;
        Routing r = g.route(two, 2);
        assertEquals(2, r.rows());
        assertArrayEquals(new int[] {2, 3}, java.util.Arrays.copyOfRange(r.experts(), 2, 4));
    }
}
