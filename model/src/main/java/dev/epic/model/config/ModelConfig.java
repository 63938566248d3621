package dev.epic.model.config;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Objects;

/**
 * The fields of a DeepSeek-V3-family {@code config.json} that the engine uses (names as in the
 * file, camel-cased). Nullable: {@code qLoraRank} (null means a plain {@code q_proj}),
 * {@code nRoutedExperts} (null means a dense model), {@code ropeScaling}, {@code quantization}.
 */
public record ModelConfig(
        int hiddenSize,
        int intermediateSize,
        int moeIntermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        Integer qLoraRank,
        int kvLoraRank,
        int qkNopeHeadDim,
        int qkRopeHeadDim,
        int vHeadDim,
        Integer nRoutedExperts,
        int nSharedExperts,
        int numExpertsPerTok,
        int nGroup,
        int topkGroup,
        double routedScalingFactor,
        ScoringFunc scoringFunc,
        TopkMethod topkMethod,
        boolean normTopkProb,
        int firstKDenseReplace,
        int moeLayerFreq,
        double rmsNormEps,
        double ropeTheta,
        RopeScaling ropeScaling,
        int maxPositionEmbeddings,
        int vocabSize,
        int bosTokenId,
        int eosTokenId,
        boolean tieWordEmbeddings,
        QuantizationConfig quantization,
        int numNextnPredictLayers) {

    public enum ScoringFunc { SIGMOID, SOFTMAX }

    /** noaux_tc: group score = sum of top-2 biased scores (V3); group_limited_greedy: max (V2); greedy: no groups. */
    public enum TopkMethod { NOAUX_TC, GREEDY, GROUP_LIMITED_GREEDY }

    public static final String FILE_NAME = "config.json";

    private static final ObjectMapper JSON = new ObjectMapper();

    /** Query + key head width: nope part then rope part. */
    public int qkHeadDim() {
        return qkNopeHeadDim + qkRopeHeadDim;
    }

    /** Layer i uses a MoE FFN iff experts exist, i >= first_k_dense_replace and i % moe_layer_freq == 0. */
    public boolean isMoeLayer(int layer) {
        return nRoutedExperts != null && layer >= firstKDenseReplace && layer % moeLayerFreq == 0;
    }

    public boolean isFp8() {
        return quantization != null;
    }

    /** Reads {@code dir/config.json} or the given file. */
    public static ModelConfig load(Path path) {
        Path file = Files.isDirectory(path) ? path.resolve(FILE_NAME) : path;
        if (!Files.isRegularFile(file)) {
            throw new ConfigException("model config not found: " + file);
        }
        JsonNode root;
        try {
            root = JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new ConfigException("cannot parse " + file + ": " + e.getMessage(), e);
        }
        return parse(root, file.toString());
    }

    /** Parses a config tree; {@code source} names the file in error messages. */
    public static ModelConfig parse(JsonNode root, String source) {
        if (root == null || !root.isObject()) {
            throw new ConfigException(source + ": expected a JSON object");
        }
        Fields f = new Fields(root, source);
        requireArchitecture(f);
        Integer routed = f.nullableInt("n_routed_experts");
        boolean moe = routed != null;
        int hidden = f.positiveInt("hidden_size");
        ModelConfig c = new ModelConfig(
                hidden,
                f.positiveInt("intermediate_size"),
                moe ? f.positiveInt("moe_intermediate_size") : f.intOr("moe_intermediate_size", 0),
                f.positiveInt("num_hidden_layers"),
                f.positiveInt("num_attention_heads"),
                f.nullableInt("q_lora_rank"),
                f.positiveInt("kv_lora_rank"),
                f.positiveInt("qk_nope_head_dim"),
                f.positiveInt("qk_rope_head_dim"),
                f.positiveInt("v_head_dim"),
                routed,
                // null: no shared expert, as Hugging Face's modeling_deepseek reads it
                moe ? Objects.requireNonNullElse(f.nullableInt("n_shared_experts"), 0) : f.intOr("n_shared_experts", 0),
                moe ? f.positiveInt("num_experts_per_tok") : 0,
                moe ? f.positiveInt("n_group") : 1,
                moe ? f.positiveInt("topk_group") : 1,
                moe ? f.positiveNumber("routed_scaling_factor") : 1.0,
                moe ? f.enumValue("scoring_func", ScoringFunc.class) : ScoringFunc.SIGMOID,
                moe ? f.enumValue("topk_method", TopkMethod.class) : TopkMethod.GREEDY,
                moe && f.bool("norm_topk_prob"),
                moe ? f.nonNegativeInt("first_k_dense_replace") : 0,
                f.intOr("moe_layer_freq", 1),
                f.number("rms_norm_eps"),
                ropeTheta(f),
                ropeScaling(f.node("rope_scaling"), source),
                f.positiveInt("max_position_embeddings"),
                f.positiveInt("vocab_size"),
                f.intOr("bos_token_id", 0),
                f.firstIntOr("eos_token_id", 1),
                f.boolOr("tie_word_embeddings", false),
                quantization(f.node("quantization_config"), source),
                f.intOr("num_nextn_predict_layers", 0));
        c.validate(source);
        return c;
    }

    /**
     * Refuses the config.json fields the engine does not read but which would change the network:
     * the code implements DeepSeek-V3 only. deepseek_v2 is refused rather than run: its gate does not
     * apply routed_scaling_factor when it normalises the top-k weights (V3 applies both), and its
     * other differences are not covered by a golden test here.
     */
    private static void requireArchitecture(Fields f) {
        // Absent, the fields themselves say what network it is (every one V3 needs is required below).
        String type = f.stringOr("model_type", "deepseek_v3");
        if (!type.equals("deepseek_v3")) {
            throw new ConfigException(f.source() + ": field 'model_type' is '" + type
                    + "'; only deepseek_v3 is supported" + (type.equals("deepseek_v2")
                            ? " (DeepSeek-V2 routes differently: no routed_scaling_factor with norm_topk_prob)" : ""));
        }
        String act = f.stringOr("hidden_act", "silu");
        if (!act.equals("silu")) {
            throw new ConfigException(f.source() + ": field 'hidden_act' is '" + act + "'; only silu is supported");
        }
        if (f.boolOr("attention_bias", false)) {
            throw new ConfigException(f.source() + ": field 'attention_bias' is true; the attention projections"
                    + " here have no bias");
        }
    }

    /** YaRN divides by ln(theta), and theta <= 1 gives no decaying frequencies: refuse it here, by name. */
    private static double ropeTheta(Fields f) {
        double theta = f.number("rope_theta");
        if (!(theta > 1) || Double.isInfinite(theta)) {
            throw new ConfigException(f.source() + ": field 'rope_theta' must be a finite number > 1, got " + theta);
        }
        return theta;
    }

    private void validate(String source) {
        if (qLoraRank != null && qLoraRank <= 0) {
            throw new ConfigException(source + ": q_lora_rank must be positive or null, got " + qLoraRank);
        }
        if (qkRopeHeadDim % 2 != 0) {
            throw new ConfigException(source + ": qk_rope_head_dim must be even, got " + qkRopeHeadDim);
        }
        if (moeLayerFreq <= 0) {
            throw new ConfigException(source + ": moe_layer_freq must be positive, got " + moeLayerFreq);
        }
        if (nRoutedExperts != null) {
            if (nRoutedExperts <= 0 || nRoutedExperts % nGroup != 0) {
                throw new ConfigException(source + ": n_routed_experts (" + nRoutedExperts
                        + ") must be a positive multiple of n_group (" + nGroup + ")");
            }
            if (topkGroup > nGroup) {
                throw new ConfigException(source + ": topk_group (" + topkGroup + ") exceeds n_group (" + nGroup + ")");
            }
            int candidates = topkMethod == TopkMethod.GREEDY ? nRoutedExperts : topkGroup * (nRoutedExperts / nGroup);
            if (numExpertsPerTok > candidates) {
                throw new ConfigException(source + ": num_experts_per_tok (" + numExpertsPerTok
                        + ") exceeds the " + candidates + " experts the kept groups offer");
            }
        }
        if (rmsNormEps <= 0) {
            throw new ConfigException(source + ": rms_norm_eps must be positive, got " + rmsNormEps);
        }
    }

    private static RopeScaling ropeScaling(JsonNode node, String source) {
        if (node == null || node.isNull()) {
            return null;
        }
        Fields f = new Fields(node, source + " rope_scaling");
        String type = node.hasNonNull("type") ? node.get("type").asText() : f.string("rope_type");
        if (!type.equals("yarn")) {
            throw new ConfigException(source + ": rope_scaling type '" + type + "' is not supported (expected yarn)");
        }
        return new RopeScaling(f.positiveNumber("factor"), f.positiveInt("original_max_position_embeddings"),
                f.positiveNumberOr("beta_fast", 32), f.positiveNumberOr("beta_slow", 1), f.numberOr("mscale", 1),
                f.numberOr("mscale_all_dim", 0));
    }

    private static QuantizationConfig quantization(JsonNode node, String source) {
        if (node == null || node.isNull()) {
            return null;
        }
        Fields f = new Fields(node, source + " quantization_config");
        String method = f.string("quant_method");
        if (!method.equals("fp8")) {
            throw new ConfigException(source + ": quantization_config.quant_method '" + method
                    + "' is not supported (expected fp8)");
        }
        JsonNode block = f.node("weight_block_size");
        if (block == null || !block.isArray() || block.size() != 2 || !block.get(0).canConvertToInt()
                || !block.get(1).canConvertToInt()) {
            throw new ConfigException(source + ": quantization_config.weight_block_size must be [rows, cols]");
        }
        // The scale grid is ceil(rows / blockRows) x ceil(cols / blockCols): a zero block would divide by zero.
        if (block.get(0).asInt() <= 0 || block.get(1).asInt() <= 0) {
            throw new ConfigException(source + ": quantization_config.weight_block_size must be positive, got " + block);
        }
        String fmt = node.hasNonNull("fmt") ? node.get("fmt").asText() : "e4m3";
        if (!fmt.equals("e4m3")) {
            throw new ConfigException(source + ": fp8 format '" + fmt + "' is not supported (expected e4m3)");
        }
        String scheme = node.hasNonNull("activation_scheme") ? node.get("activation_scheme").asText() : "dynamic";
        return new QuantizationConfig(method, fmt, scheme, block.get(0).asInt(), block.get(1).asInt());
    }

    /** Typed, named access to the fields of one JSON object, with errors that name the field and file. */
    private record Fields(JsonNode obj, String source) {
        JsonNode node(String name) {
            return obj.get(name);
        }

        private JsonNode required(String name) {
            JsonNode n = obj.get(name);
            if (n == null || n.isNull()) {
                throw new ConfigException(source + ": missing required field '" + name + "'");
            }
            return n;
        }

        int integer(String name) {
            JsonNode n = required(name);
            if (!n.isIntegralNumber() || !n.canConvertToInt()) {
                throw new ConfigException(source + ": field '" + name + "' must be an integer, got " + n);
            }
            return n.intValue();
        }

        int positiveInt(String name) {
            int v = integer(name);
            if (v <= 0) {
                throw new ConfigException(source + ": field '" + name + "' must be positive, got " + v);
            }
            return v;
        }

        int nonNegativeInt(String name) {
            int v = integer(name);
            if (v < 0) {
                throw new ConfigException(source + ": field '" + name + "' must be >= 0, got " + v);
            }
            return v;
        }

        /** The key must be present (it changes the architecture); null is a meaningful value. */
        Integer nullableInt(String name) {
            if (!obj.has(name)) {
                throw new ConfigException(source + ": missing required field '" + name + "' (use null to disable)");
            }
            return obj.get(name).isNull() ? null : integer(name);
        }

        int intOr(String name, int fallback) {
            return obj.hasNonNull(name) ? integer(name) : fallback;
        }

        int firstIntOr(String name, int fallback) {
            JsonNode n = obj.get(name);
            if (n != null && n.isArray() && !n.isEmpty()) {
                return n.get(0).asInt();
            }
            return intOr(name, fallback);
        }

        double number(String name) {
            JsonNode n = required(name);
            if (!n.isNumber()) {
                throw new ConfigException(source + ": field '" + name + "' must be a number, got " + n);
            }
            return n.doubleValue();
        }

        double numberOr(String name, double fallback) {
            return obj.hasNonNull(name) ? number(name) : fallback;
        }

        double positiveNumber(String name) {
            return positive(name, number(name));
        }

        double positiveNumberOr(String name, double fallback) {
            return obj.hasNonNull(name) ? positiveNumber(name) : fallback;
        }

        private double positive(String name, double v) {
            if (!(v > 0) || Double.isInfinite(v)) {
                throw new ConfigException(source + ": field '" + name + "' must be a finite number > 0, got " + v);
            }
            return v;
        }

        boolean bool(String name) {
            JsonNode n = required(name);
            if (!n.isBoolean()) {
                throw new ConfigException(source + ": field '" + name + "' must be true or false, got " + n);
            }
            return n.booleanValue();
        }

        boolean boolOr(String name, boolean fallback) {
            return obj.hasNonNull(name) ? bool(name) : fallback;
        }

        String string(String name) {
            JsonNode n = required(name);
            if (!n.isTextual()) {
                throw new ConfigException(source + ": field '" + name + "' must be a string, got " + n);
            }
            return n.textValue();
        }

        String stringOr(String name, String fallback) {
            return obj.hasNonNull(name) ? string(name) : fallback;
        }

        <E extends Enum<E>> E enumValue(String name, Class<E> type) {
            String v = string(name);
            try {
                return Enum.valueOf(type, v.toUpperCase(java.util.Locale.ROOT));
            } catch (IllegalArgumentException e) {
                throw new ConfigException(source + ": field '" + name + "' has unsupported value '" + v + "'");
            }
        }
    }
}
