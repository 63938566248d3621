package dev.epic.model.synth;

import dev.epic.model.checkpoint.Dtype;
import dev.epic.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.List;

/**
 * Every tensor of a DeepSeek-V3 checkpoint with its real Hugging Face name and shape, in model order
 * (embeddings, layers, final norm, lm_head, then the MTP layers), as the real shards are cut.
 * In fp8 mode every 2-D linear is F8_E4M3 followed by its F32 {@code weight_scale_inv}; embeddings,
 * norms, lm_head and the router stay BF16, the routing bias F32.
 */
final class TensorLayout {
    private final ModelConfig c;
    private final boolean fp8;
    private final List<SynthTensor> out = new ArrayList<>();

    private TensorLayout(ModelConfig c, boolean fp8) {
        this.c = c;
        this.fp8 = fp8;
    }

    static List<SynthTensor> of(ModelConfig c, boolean fp8) {
        TensorLayout l = new TensorLayout(c, fp8);
        l.build();
        return l.out;
    }

    private void build() {
        int h = c.hiddenSize();
        embedding("model.embed_tokens.weight", c.vocabSize(), h);
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            layer(i);
        }
        norm("model.norm.weight", h);
        if (!c.tieWordEmbeddings()) {
            bf16Linear("lm_head.weight", c.vocabSize(), h);
        }
        for (int m = 0; m < c.numNextnPredictLayers(); m++) {
            int i = c.numHiddenLayers() + m;
            String p = "model.layers." + i + ".";
            embedding(p + "embed_tokens.weight", c.vocabSize(), h);
            norm(p + "enorm.weight", h);
            norm(p + "hnorm.weight", h);
            linear(p + "eh_proj.weight", h, 2 * h);
            layer(i);
            norm(p + "shared_head.norm.weight", h);
            bf16Linear(p + "shared_head.head.weight", c.vocabSize(), h);
        }
    }

    private void layer(int i) {
        int h = c.hiddenSize();
        String p = "model.layers." + i + ".";
        norm(p + "input_layernorm.weight", h);
        String a = p + "self_attn.";
        int qOut = c.numAttentionHeads() * c.qkHeadDim();
        if (c.qLoraRank() != null) {
            linear(a + "q_a_proj.weight", c.qLoraRank(), h);
            norm(a + "q_a_layernorm.weight", c.qLoraRank());
            linear(a + "q_b_proj.weight", qOut, c.qLoraRank());
        } else {
            linear(a + "q_proj.weight", qOut, h);
        }
        linear(a + "kv_a_proj_with_mqa.weight", c.kvLoraRank() + c.qkRopeHeadDim(), h);
        norm(a + "kv_a_layernorm.weight", c.kvLoraRank());
        linear(a + "kv_b_proj.weight", c.numAttentionHeads() * (c.qkNopeHeadDim() + c.vHeadDim()), c.kvLoraRank());
        linear(a + "o_proj.weight", h, c.numAttentionHeads() * c.vHeadDim());
        norm(p + "post_attention_layernorm.weight", h);
        // The MTP layer is always MoE in DeepSeek-V3 (index >= first_k_dense_replace).
        boolean moe = c.nRoutedExperts() != null && i >= c.firstKDenseReplace() && i % c.moeLayerFreq() == 0;
        if (!moe) {
            mlp(p + "mlp.", c.intermediateSize());
            return;
        }
        int e = c.nRoutedExperts();
        bf16Linear(p + "mlp.gate.weight", e, h);
        out.add(new SynthTensor(p + "mlp.gate.e_score_correction_bias", Dtype.F32, new long[] {e},
                SynthTensor.Kind.BIAS, 0.01));
        for (int j = 0; j < e; j++) {
            mlp(p + "mlp.experts." + j + ".", c.moeIntermediateSize());
        }
        if (c.nSharedExperts() > 0) {
            mlp(p + "mlp.shared_experts.", c.nSharedExperts() * c.moeIntermediateSize());
        }
    }

    private void mlp(String p, int inter) {
        int h = c.hiddenSize();
        linear(p + "down_proj.weight", h, inter);
        linear(p + "gate_proj.weight", inter, h);
        linear(p + "up_proj.weight", inter, h);
    }

    private void norm(String name, int n) {
        out.add(new SynthTensor(name, Dtype.BF16, new long[] {n}, SynthTensor.Kind.ONES, 0));
    }

    private void embedding(String name, int vocab, int h) {
        out.add(new SynthTensor(name, Dtype.BF16, new long[] {vocab, h}, SynthTensor.Kind.WEIGHT, 1.0));
    }

    /** std 1/sqrt(fan_in) keeps every projection's output O(1). */
    private void bf16Linear(String name, int rows, int cols) {
        out.add(new SynthTensor(name, Dtype.BF16, new long[] {rows, cols}, SynthTensor.Kind.WEIGHT,
                1 / Math.sqrt(cols)));
    }

    private void linear(String name, int rows, int cols) {
        if (!fp8) {
            bf16Linear(name, rows, cols);
            return;
        }
        double std = 1 / Math.sqrt(cols);
        out.add(new SynthTensor(name, Dtype.F8_E4M3, new long[] {rows, cols}, SynthTensor.Kind.FP8_WEIGHT, std));
        int br = c.quantization().blockRows();
        int bc = c.quantization().blockCols();
        out.add(new SynthTensor(name + "_scale_inv", Dtype.F32,
                new long[] {Math.ceilDiv(rows, br), Math.ceilDiv(cols, bc)}, SynthTensor.Kind.FP8_SCALES, std));
    }
}
