package dev.epic.model.synth;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.config.QuantizationConfig;
import dev.epic.model.config.RopeScaling;
import java.io.IOException;
import java.nio.file.Path;
import java.util.Locale;

/** Writes a {@link ModelConfig} as a Hugging Face DeepSeek-V3 {@code config.json} (keys sorted, like the real file). */
public final class ConfigWriter {
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(SerializationFeature.INDENT_OUTPUT)
            .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);

    private ConfigWriter() {}

    public static ObjectNode toJson(ModelConfig c) {
        ObjectNode n = JSON.createObjectNode();
        n.putArray("architectures").add("DeepseekV3ForCausalLM");
        n.put("attention_bias", false);
        n.put("attention_dropout", 0.0);
        n.put("bos_token_id", c.bosTokenId());
        n.put("eos_token_id", c.eosTokenId());
        n.put("ep_size", 1);
        n.put("first_k_dense_replace", c.firstKDenseReplace());
        n.put("hidden_act", "silu");
        n.put("hidden_size", c.hiddenSize());
        n.put("initializer_range", 0.02);
        n.put("intermediate_size", c.intermediateSize());
        n.put("kv_lora_rank", c.kvLoraRank());
        n.put("max_position_embeddings", c.maxPositionEmbeddings());
        n.put("model_type", "deepseek_v3");
        n.put("moe_intermediate_size", c.moeIntermediateSize());
        n.put("moe_layer_freq", c.moeLayerFreq());
        n.put("n_group", c.nGroup());
        if (c.nRoutedExperts() != null) {
            n.put("n_routed_experts", c.nRoutedExperts());
        } else {
            n.putNull("n_routed_experts");
        }
        n.put("n_shared_experts", c.nSharedExperts());
        n.put("norm_topk_prob", c.normTopkProb());
        n.put("num_attention_heads", c.numAttentionHeads());
        n.put("num_experts_per_tok", c.numExpertsPerTok());
        n.put("num_hidden_layers", c.numHiddenLayers());
        n.put("num_key_value_heads", c.numAttentionHeads());
        n.put("num_nextn_predict_layers", c.numNextnPredictLayers());
        if (c.qLoraRank() != null) {
            n.put("q_lora_rank", c.qLoraRank());
        } else {
            n.putNull("q_lora_rank");
        }
        n.put("qk_nope_head_dim", c.qkNopeHeadDim());
        n.put("qk_rope_head_dim", c.qkRopeHeadDim());
        QuantizationConfig q = c.quantization();
        if (q != null) {
            ObjectNode qn = n.putObject("quantization_config");
            qn.put("activation_scheme", q.activationScheme());
            qn.put("fmt", q.fmt());
            qn.put("quant_method", q.quantMethod());
            qn.putArray("weight_block_size").add(q.blockRows()).add(q.blockCols());
        }
        n.put("rms_norm_eps", c.rmsNormEps());
        RopeScaling r = c.ropeScaling();
        if (r != null) {
            ObjectNode rn = n.putObject("rope_scaling");
            rn.put("beta_fast", r.betaFast());
            rn.put("beta_slow", r.betaSlow());
            rn.put("factor", r.factor());
            rn.put("mscale", r.mscale());
            rn.put("mscale_all_dim", r.mscaleAllDim());
            rn.put("original_max_position_embeddings", r.originalMaxPositionEmbeddings());
            rn.put("type", "yarn");
        } else {
            n.putNull("rope_scaling");
        }
        n.put("rope_theta", c.ropeTheta());
        n.put("routed_scaling_factor", c.routedScalingFactor());
        n.put("scoring_func", c.scoringFunc().name().toLowerCase(Locale.ROOT));
        n.put("tie_word_embeddings", c.tieWordEmbeddings());
        n.put("topk_group", c.topkGroup());
        n.put("topk_method", c.topkMethod().name().toLowerCase(Locale.ROOT));
        n.put("torch_dtype", "bfloat16");
        n.put("transformers_version", "4.46.3");
        n.put("use_cache", true);
        n.put("v_head_dim", c.vHeadDim());
        n.put("vocab_size", c.vocabSize());
        return n;
    }

    public static void write(ModelConfig c, Path file) throws IOException {
        JSON.writeValue(file.toFile(), toJson(c));
    }
}
