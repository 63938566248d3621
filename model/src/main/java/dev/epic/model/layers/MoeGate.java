package dev.epic.model.layers;

import dev.epic.kernels.Matrix;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.config.ModelConfig.ScoringFunc;
import dev.epic.model.config.ModelConfig.TopkMethod;

/**
 * DeepSeek-V3 expert routing (auxiliary-loss-free, node-limited):
 * <pre>
 *   s = sigmoid(x W_gate^T)                  (or softmax)
 *   b = s + e_score_correction_bias          (used only to choose experts)
 *   group score = sum of the top-2 b in each of n_group contiguous groups   (max for V2's group_limited_greedy)
 *   keep topk_group groups; pick the num_experts_per_tok largest b in them
 *   weight_j = s_j / sum(s_selected)  (if norm_topk_prob)  * routed_scaling_factor
 * </pre>
 */
public final class MoeGate {
    private final Matrix weight;
    private final float[] bias; // null when the checkpoint has no e_score_correction_bias
    private final int experts;
    private final int k;
    private final int groups;
    private final int topkGroup;
    private final ScoringFunc scoring;
    private final TopkMethod method;
    private final boolean normalize;
    private final float scale;

    public long storageBytes() {
        return weight.storageBytes();
    }

    /** Multiply-adds of one row's router logits. */
    public long multiplyAdds() {
        return (long) weight.rows() * weight.cols();
    }

    public MoeGate(ModelConfig c, WeightSource w, int layer) {
        String p = "model.layers." + layer + ".mlp.gate.";
        this.experts = c.nRoutedExperts();
        this.weight = w.matrix(p + "weight", experts, c.hiddenSize());
        this.bias = w.contains(p + "e_score_correction_bias") ? w.vector(p + "e_score_correction_bias", experts) : null;
        if (bias == null && c.topkMethod() == TopkMethod.NOAUX_TC) {
            throw new IllegalArgumentException("topk_method noaux_tc needs " + p + "e_score_correction_bias");
        }
        this.k = c.numExpertsPerTok();
        this.groups = c.topkMethod() == TopkMethod.GREEDY ? 1 : c.nGroup();
        this.topkGroup = c.topkMethod() == TopkMethod.GREEDY ? 1 : c.topkGroup();
        this.scoring = c.scoringFunc();
        this.method = c.topkMethod();
        this.normalize = c.normTopkProb();
        this.scale = (float) c.routedScalingFactor();
    }

    public int k() {
        return k;
    }

    public Routing route(float[] x, int rows) {
        float[] logits = new float[rows * experts];
        weight.matmul(x, logits, rows);
        int[] ids = new int[rows * k];
        float[] weights = new float[rows * k];
        float[] s = new float[experts];
        float[] b = new float[experts];
        for (int r = 0; r < rows; r++) {
            scores(logits, r * experts, s);
            for (int e = 0; e < experts; e++) {
                b[e] = bias != null ? s[e] + bias[e] : s[e];
            }
            maskDroppedGroups(b);
            float sum = 0f;
            for (int j = 0; j < k; j++) {
                int best = argmax(b, 0, experts);
                ids[r * k + j] = best;
                weights[r * k + j] = s[best];
                sum += s[best];
                b[best] = Float.NEGATIVE_INFINITY;
            }
            for (int j = 0; j < k; j++) {
                float wj = normalize ? weights[r * k + j] / sum : weights[r * k + j];
                weights[r * k + j] = wj * scale;
            }
        }
        return new Routing(rows, k, ids, weights);
    }

    private void scores(float[] logits, int off, float[] s) {
        if (scoring == ScoringFunc.SIGMOID) {
            for (int e = 0; e < experts; e++) {
                s[e] = (float) (1.0 / (1.0 + Math.exp(-logits[off + e])));
            }
            return;
        }
        float max = Float.NEGATIVE_INFINITY;
        for (int e = 0; e < experts; e++) {
            max = Math.max(max, logits[off + e]);
        }
        float sum = 0f;
        for (int e = 0; e < experts; e++) {
            s[e] = (float) Math.exp(logits[off + e] - max);
            sum += s[e];
        }
        for (int e = 0; e < experts; e++) {
            s[e] /= sum;
        }
    }

    /** Sets b to -inf outside the topk_group best groups. */
    private void maskDroppedGroups(float[] b) {
        if (groups == 1) {
            return;
        }
        int size = experts / groups;
        float[] groupScore = new float[groups];
        for (int g = 0; g < groups; g++) {
            groupScore[g] = method == TopkMethod.NOAUX_TC ? topTwoSum(b, g * size, size) : max(b, g * size, size);
        }
        boolean[] kept = new boolean[groups];
        for (int i = 0; i < topkGroup; i++) {
            int g = argmax(groupScore, 0, groups);
            kept[g] = true;
            groupScore[g] = Float.NEGATIVE_INFINITY;
        }
        for (int g = 0; g < groups; g++) {
            if (!kept[g]) {
                java.util.Arrays.fill(b, g * size, (g + 1) * size, Float.NEGATIVE_INFINITY);
            }
        }
    }

    private static float topTwoSum(float[] v, int off, int n) {
        float first = Float.NEGATIVE_INFINITY;
        float second = Float.NEGATIVE_INFINITY;
        for (int i = off; i < off + n; i++) {
            if (v[i] > first) {
                second = first;
                first = v[i];
            } else if (v[i] > second) {
                second = v[i];
            }
        }
        return n == 1 ? first : first + second;
    }

    private static float max(float[] v, int off, int n) {
        float m = Float.NEGATIVE_INFINITY;
        for (int i = off; i < off + n; i++) {
            m = Math.max(m, v[i]);
        }
        return m;
    }

    /** Index of the largest value; the lowest index wins ties. */
    private static int argmax(float[] v, int off, int n) {
        int best = off;
        for (int i = off + 1; i < off + n; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best - off;
    }
}
