package dev.epic.model.synth;

import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.VectorOps;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.Golden;
import dev.epic.model.KvCache;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.SafetensorsFile;
import dev.epic.model.checkpoint.SafetensorsWriter;
import dev.epic.model.checkpoint.TensorInfo;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.synth.SyntheticCheckpoint.Options;
import dev.epic.model.synth.SyntheticCheckpoint.WeightDtype;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SyntheticCheckpointTest {
    private static final SyntheticCheckpoint.Progress QUIET = (done, total) -> {};

    @Test
    void tinyV3PresetHasTheRealLayoutAndRuns(@TempDir Path tmp) throws IOException {
        var result = SyntheticCheckpoint.write(Presets.tinyV3(), tmp, new Options(WeightDtype.BF16, 7, 3L << 20), QUIET);
        assertTrue(result.shards().size() >= 3, "split at the threshold: " + result.shards().size());
        assertEquals(ModelConfig.load(TestData.model("tiny-v3")), ModelConfig.load(tmp));
        try (Checkpoint synth = Checkpoint.open(tmp); Checkpoint real = Checkpoint.open(TestData.model("tiny-v3"))) {
            assertEquals(real.tensorNames(), synth.tensorNames(), "same tensor names as the reference checkpoint");
            for (String name : real.tensorNames()) {
                if (!real.isMtpTensor(name)) {
                    TensorInfo a = real.info(name);
                    TensorInfo b = synth.info(name);
                    assertArrayEquals(a.shape(), b.shape(), name);
                    assertEquals(a.dtype(), b.dtype(), name);
                }
            }
            assertFileOrder(result.shards());
            runsSanely(Transformer.load(synth));
        }
    }

    @Test
    void fp8MatchesTheReferenceFp8Layout(@TempDir Path tmp) throws IOException {
        ModelConfig fp8Arch = ModelConfig.load(TestData.model("tiny-v3-fp8"));
        SyntheticCheckpoint.write(fp8Arch, tmp, new Options(WeightDtype.FP8, 3, 2L << 20), QUIET);
        assertEquals(fp8Arch, ModelConfig.load(tmp));
        try (Checkpoint synth = Checkpoint.open(tmp); Checkpoint real = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            assertEquals(real.tensorNames(), synth.tensorNames());
            for (String name : real.tensorNames()) {
                assertArrayEquals(real.info(name).shape(), synth.info(name).shape(), name);
                assertEquals(real.info(name).dtype(), synth.info(name).dtype(), name);
            }
            runsSanely(Transformer.load(synth));
        }
    }

    @Test
    void tinyV3Fp8PresetRuns(@TempDir Path tmp) throws IOException {
        SyntheticCheckpoint.write(Presets.tinyV3(), tmp, new Options(WeightDtype.FP8, 1, Options.DEFAULT_SHARD_BYTES),
                QUIET);
        try (Checkpoint synth = Checkpoint.open(tmp)) {
            assertEquals(128, synth.config().quantization().blockRows());
            runsSanely(Transformer.load(synth));
        }
    }

    /** A config naming other fp8 blocks gets them (it was rewritten to 128x128). */
    @Test
    void fp8KeepsTheConfigsBlockSize(@TempDir Path tmp) throws IOException {
        ModelConfig arch = SyntheticCheckpoint.withDtype(Presets.tinyV3(), WeightDtype.FP8);
        ModelConfig blocks = new ModelConfig(arch.hiddenSize(), arch.intermediateSize(), arch.moeIntermediateSize(),
                arch.numHiddenLayers(), arch.numAttentionHeads(), arch.qLoraRank(), arch.kvLoraRank(), arch.qkNopeHeadDim(),
                arch.qkRopeHeadDim(), arch.vHeadDim(), arch.nRoutedExperts(), arch.nSharedExperts(),
                arch.numExpertsPerTok(), arch.nGroup(), arch.topkGroup(), arch.routedScalingFactor(), arch.scoringFunc(),
                arch.topkMethod(), arch.normTopkProb(), arch.firstKDenseReplace(), arch.moeLayerFreq(), arch.rmsNormEps(),
                arch.ropeTheta(), arch.ropeScaling(), arch.maxPositionEmbeddings(), arch.vocabSize(), arch.bosTokenId(),
                arch.eosTokenId(), arch.tieWordEmbeddings(),
                new dev.epic.model.config.QuantizationConfig("fp8", "e4m3", "dynamic", 32, 16), arch.numNextnPredictLayers());
        SyntheticCheckpoint.write(blocks, tmp, new Options(WeightDtype.FP8, 1, Options.DEFAULT_SHARD_BYTES), QUIET);
        try (Checkpoint synth = Checkpoint.open(tmp)) {
            assertEquals(32, synth.config().quantization().blockRows());
            assertEquals(16, synth.config().quantization().blockCols());
            int out = arch.moeIntermediateSize(), in = arch.hiddenSize();
            assertArrayEquals(new long[] {Math.ceilDiv(out, 32), Math.ceilDiv(in, 16)},
                    synth.info("model.layers.1.mlp.experts.0.gate_proj.weight_scale_inv").shape());
            runsSanely(Transformer.load(synth));
        }
    }

    @Test
    void plainQProjWithoutRopeScalingRuns(@TempDir Path tmp) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode n = (ObjectNode) json.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.putNull("q_lora_rank");
        n.putNull("rope_scaling");
        n.put("num_nextn_predict_layers", 0);
        Path file = tmp.resolve("variant.json");
        json.writeValue(file.toFile(), n);
        Path out = tmp.resolve("model");
        SyntheticCheckpoint.write(ModelConfig.load(file), out, new Options(WeightDtype.BF16, 5, 1L << 30), QUIET);
        try (Checkpoint synth = Checkpoint.open(out)) {
            assertNull(synth.config().qLoraRank());
            assertNull(synth.config().ropeScaling());
            assertTrue(synth.contains("model.layers.0.self_attn.q_proj.weight"));
            assertTrue(!synth.contains("model.layers.0.self_attn.q_a_proj.weight"));
            runsSanely(Transformer.load(synth));
        }
    }

    @Test
    void denseModelWithoutExpertsRuns(@TempDir Path tmp) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode n = (ObjectNode) json.readTree(TestData.model("tiny-v3").resolve("config.json").toFile());
        n.putNull("n_routed_experts");
        n.put("num_nextn_predict_layers", 0);
        Path file = tmp.resolve("dense.json");
        json.writeValue(file.toFile(), n);
        Path out = tmp.resolve("model");
        SyntheticCheckpoint.write(ModelConfig.load(file), out, new Options(WeightDtype.BF16, 5, 1L << 30), QUIET);
        try (Checkpoint synth = Checkpoint.open(out)) {
            assertNull(synth.config().nRoutedExperts());
            assertTrue(synth.contains("model.layers.3.mlp.gate_proj.weight"));
            runsSanely(Transformer.load(synth));
        }
    }

    @Test
    void deterministicPerSeed(@TempDir Path tmp) throws IOException {
        ModelConfig c = Presets.tinyV3();
        SyntheticCheckpoint.write(c, tmp.resolve("a"), new Options(WeightDtype.BF16, 11, 1L << 30), QUIET);
        SyntheticCheckpoint.write(c, tmp.resolve("b"), new Options(WeightDtype.BF16, 11, 1L << 30), QUIET);
        SyntheticCheckpoint.write(c, tmp.resolve("c"), new Options(WeightDtype.BF16, 12, 1L << 30), QUIET);
        String f = "model-00001-of-00001.safetensors";
        assertEquals(-1, Files.mismatch(tmp.resolve("a").resolve(f), tmp.resolve("b").resolve(f)));
        assertTrue(Files.mismatch(tmp.resolve("a").resolve(f), tmp.resolve("c").resolve(f)) >= 0);
    }

    /** Tensors inside each file are ordered by (dtype size descending, name). */
    private static void assertFileOrder(List<Path> shards) {
        try (Arena arena = Arena.ofConfined()) {
            for (Path shard : shards) {
                List<TensorInfo> infos = new ArrayList<>(SafetensorsFile.open(shard, arena).tensors().values());
                infos.sort((x, y) -> Long.compare(x.begin(), y.begin()));
                List<SafetensorsWriter.Spec> specs = infos.stream()
                        .map(i -> new SafetensorsWriter.Spec(i.name(), i.dtype(), i.shape())).toList();
                List<SafetensorsWriter.Spec> sorted = new ArrayList<>(specs);
                sorted.sort(SafetensorsWriter.FILE_ORDER);
                assertEquals(sorted.stream().map(SafetensorsWriter.Spec::name).toList(),
                        specs.stream().map(SafetensorsWriter.Spec::name).toList(), shard.toString());
            }
        }
    }

    /** Finite logits with a useful spread; cached decoding agrees with recomputation. */
    private static void runsSanely(Transformer model) {
        int[] prompt = {5, 17, 4, 99, 23};
        KvCache cache = model.newCache();
        float[] logits = model.forward(cache, prompt);
        double mean = 0;
        double sq = 0;
        for (float v : logits) {
            assertTrue(Float.isFinite(v));
            mean += v;
            sq += v * v;
        }
        mean /= logits.length;
        double std = Math.sqrt(sq / logits.length - mean * mean);
        assertTrue(std > 0.2 && std < 20, "logit std " + std);
        int next = VectorOps.argmax(logits);
        float[] cached = model.forward(cache, next);
        int[] longer = Arrays.copyOf(prompt, prompt.length + 1);
        longer[prompt.length] = next;
        float[] recomputed = model.forward(model.newCache(), longer);
        assertTrue(maxAbsDiff(cached, recomputed) <= 1e-5f, "cache vs recompute " + maxAbsDiff(cached, recomputed));
    }
}
