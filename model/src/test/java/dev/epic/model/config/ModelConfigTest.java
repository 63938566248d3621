package dev.epic.model.config;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.TestData;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ModelConfigTest {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Test
    void readsTinyV3() {
        ModelConfig c = ModelConfig.load(TestData.model("tiny-v3"));
        assertEquals(64, c.hiddenSize());
        assertEquals(4, c.numHiddenLayers());
        assertEquals(48, c.qLoraRank());
        assertEquals(32, c.kvLoraRank());
        assertEquals(256, c.nRoutedExperts());
        assertEquals(8, c.numExpertsPerTok());
        assertEquals(ModelConfig.ScoringFunc.SIGMOID, c.scoringFunc());
        assertEquals(ModelConfig.TopkMethod.NOAUX_TC, c.topkMethod());
        assertEquals(1e-6, c.rmsNormEps());
        assertEquals(40, c.ropeScaling().factor());
        assertEquals(4096, c.ropeScaling().originalMaxPositionEmbeddings());
        assertEquals(1.0, c.ropeScaling().mscaleAllDim());
        assertEquals(1, c.numNextnPredictLayers());
        assertNull(c.quantization());
        assertFalse(c.isMoeLayer(0));
        assertTrue(c.isMoeLayer(1));
    }

    @Test
    void readsFp8Quantization() {
        ModelConfig c = ModelConfig.load(TestData.model("tiny-v3-fp8"));
        assertEquals(128, c.quantization().blockRows());
        assertEquals(128, c.quantization().blockCols());
        assertEquals(136, c.qLoraRank());
        assertEquals(0, c.numNextnPredictLayers());
    }

    @Test
    void readsTheRealR1Config() throws Exception {
        var url = getClass().getResource("/deepseek-r1-0528-config.json");
        ModelConfig c = ModelConfig.load(Path.of(url.toURI()));
        assertEquals(7168, c.hiddenSize());
        assertEquals(61, c.numHiddenLayers());
        assertEquals(128, c.numAttentionHeads());
        assertEquals(1536, c.qLoraRank());
        assertEquals(512, c.kvLoraRank());
        assertEquals(192, c.qkHeadDim());
        assertEquals(256, c.nRoutedExperts());
        assertEquals(2048, c.moeIntermediateSize());
        assertEquals(4, c.topkGroup());
        assertEquals(2.5, c.routedScalingFactor());
        assertEquals(129280, c.vocabSize());
        assertEquals(1, c.numNextnPredictLayers());
        assertEquals(128, c.quantization().blockCols());
        assertFalse(c.isMoeLayer(2));
        assertTrue(c.isMoeLayer(3));
        assertTrue(c.isMoeLayer(60));
    }

    @Test
    void moeLayerFrequency() throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.put("moe_layer_freq", 2);
        n.put("first_k_dense_replace", 1);
        ModelConfig c = ModelConfig.parse(n, "x");
        assertFalse(c.isMoeLayer(0));
        assertFalse(c.isMoeLayer(1));
        assertTrue(c.isMoeLayer(2));
        assertFalse(c.isMoeLayer(3));
        n.putNull("n_routed_experts");
        assertFalse(ModelConfig.parse(n, "x").isMoeLayer(2));
    }

    @Test
    void nullQLoraAndRopeScaling() throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.putNull("q_lora_rank");
        n.putNull("rope_scaling");
        ModelConfig c = ModelConfig.parse(n, "x");
        assertNull(c.qLoraRank());
        assertNull(c.ropeScaling());
    }

    /** Hugging Face's modeling_deepseek reads a null n_shared_experts as no shared expert. */
    @Test
    void nullSharedExpertsMeansNone() throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.putNull("n_shared_experts");
        assertEquals(0, ModelConfig.parse(n, "x").nSharedExperts());
        n.remove("n_shared_experts");
        ConfigException e = assertThrows(ConfigException.class, () -> ModelConfig.parse(n, "x"));
        assertTrue(e.getMessage().contains("n_shared_experts"), e.getMessage());
    }

    @Test
    void missingFieldNamesFieldAndFile(@TempDir Path tmp) throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.remove("kv_lora_rank");
        Path file = tmp.resolve("config.json");
        JSON.writeValue(file.toFile(), n);
        ConfigException e = assertThrows(ConfigException.class, () -> ModelConfig.load(file));
        assertTrue(e.getMessage().contains("kv_lora_rank"), e.getMessage());
        assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
    }

    @Test
    void missingQLoraKeyIsAnError() throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.remove("q_lora_rank");
        ConfigException e = assertThrows(ConfigException.class, () -> ModelConfig.parse(n, "cfg.json"));
        assertTrue(e.getMessage().contains("q_lora_rank") && e.getMessage().contains("cfg.json"), e.getMessage());
    }

    @Test
    void wrongTypeAndBadJson(@TempDir Path tmp) throws Exception {
        ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.put("hidden_size", "wide");
        ConfigException e = assertThrows(ConfigException.class, () -> ModelConfig.parse(n, "c"));
        assertTrue(e.getMessage().contains("hidden_size"), e.getMessage());
        n.put("hidden_size", 64);
        n.put("scoring_func", "relu");
        e = assertThrows(ConfigException.class, () -> ModelConfig.parse(n, "c"));
        assertTrue(e.getMessage().contains("scoring_func"), e.getMessage());

        Path bad = tmp.resolve("config.json");
        Files.writeString(bad, "{\"hidden_size\": 64,");
        e = assertThrows(ConfigException.class, () -> ModelConfig.load(bad));
        assertTrue(e.getMessage().contains(bad.toString()), e.getMessage());
        assertThrows(ConfigException.class, () -> ModelConfig.load(tmp.resolve("nope")));
    }

    private static ObjectNode tiny() throws Exception {
        return (ObjectNode) JSON.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
    }

    private static void assertRefused(ObjectNode n, String field) {
        ConfigException e = assertThrows(ConfigException.class, () -> ModelConfig.parse(n, "cfg.json"));
        assertTrue(e.getMessage().contains(field) && e.getMessage().contains("cfg.json"), e.getMessage());
    }

    @Test
    void refusesOtherArchitectures() throws Exception {
        ObjectNode n = tiny();
        n.put("model_type", "deepseek_v2");
        assertRefused(n, "model_type");
        n.put("model_type", "llama");
        assertRefused(n, "model_type");
        n.remove("model_type"); // a hand-written config without it is read as the V3 its fields describe
        assertEquals(ModelConfig.parse(tiny(), "cfg.json"), ModelConfig.parse(n, "cfg.json"));

        n = tiny();
        n.put("hidden_act", "gelu");
        assertRefused(n, "hidden_act");
        n = tiny();
        n.put("attention_bias", true);
        assertRefused(n, "attention_bias");
    }

    @Test
    void synthesisedConfigReadsBack(@TempDir Path tmp) throws Exception {
        ModelConfig c = ModelConfig.load(TestData.model("tiny-v3"));
        Path file = tmp.resolve("config.json");
        dev.epic.model.synth.ConfigWriter.write(c, file);
        assertEquals(c, ModelConfig.load(file));
    }

    @Test
    void refusesOutOfRangeNumbers() throws Exception {
        for (double theta : new double[] {1, 0.5, 0, -10000}) {
            ObjectNode n = tiny();
            n.put("rope_theta", theta);
            assertRefused(n, "rope_theta");
        }
        for (String field : new String[] {"factor", "beta_fast", "beta_slow"}) {
            for (double v : new double[] {0, -1}) {
                ObjectNode n = tiny();
                ((ObjectNode) n.get("rope_scaling")).put(field, v);
                assertRefused(n, field);
            }
        }
        for (double v : new double[] {0, -2.5}) {
            ObjectNode n = tiny();
            n.put("routed_scaling_factor", v);
            assertRefused(n, "routed_scaling_factor");
        }
        ObjectNode n = tiny();
        n.set("rope_theta", JSON.readTree("1e400")); // a double overflows to Infinity
        assertRefused(n, "rope_theta");
    }

    @Test
    void refusesNonPositiveWeightBlock() throws Exception {
        for (int[] block : new int[][] {{0, 128}, {128, 0}, {-128, 128}}) {
            ObjectNode n = (ObjectNode) JSON.readTree(TestData.model("tiny-v3-fp8").resolve("config.json").toFile());
            ((ObjectNode) n.get("quantization_config")).putArray("weight_block_size").add(block[0]).add(block[1]);
            assertRefused(n, "weight_block_size");
        }
    }
}
