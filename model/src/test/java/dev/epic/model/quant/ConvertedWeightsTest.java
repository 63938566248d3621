package dev.epic.model.quant;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.Matrix;
import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.WeightSource;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.synth.Presets;
import dev.epic.model.synth.SyntheticCheckpoint;
import dev.epic.model.moe.LocalExperts;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class ConvertedWeightsTest {
    /** The size a format gives a weight is known without converting it, and is what converting gives. */
    @Test
    void convertedBytesMatchTheConvertedMatrices() {
        Checkpoint c = Checkpoint.open(TestData.model("tiny-v3"));
        int hidden = c.config().hiddenSize(), inter = c.config().moeIntermediateSize();
        for (WeightFormat f : new WeightFormat[] {WeightFormat.BF16, WeightFormat.Q8, WeightFormat.Q4}) {
            WeightSource w = ConvertedWeights.of(c, f, null);
            String prefix = "model.layers.1.mlp.experts.3.";
            assertEquals(w.matrix(prefix + "gate_proj.weight", inter, hidden).storageBytes(),
                    f.convertedBytes(inter, hidden), f + " gate_proj");
            assertEquals(w.matrix(prefix + "down_proj.weight", hidden, inter).storageBytes(),
                    f.convertedBytes(hidden, inter), f + " down_proj");
        }
        assertEquals(5L * (32 + 4), WeightFormat.Q8.convertedBytes(5, 7), "a partial group takes a whole one");
        assertEquals(5L * (16 + 4), WeightFormat.Q4.convertedBytes(5, 7), "a partial group takes a whole one");
    }

    @Test
    void convertsLinearsButNotEmbeddingOrRouterGate() {
        assertTrue(ConvertedWeights.converts("model.layers.1.mlp.experts.7.down_proj.weight"));
        assertTrue(ConvertedWeights.converts("model.layers.0.self_attn.kv_b_proj.weight"));
        assertTrue(ConvertedWeights.converts("lm_head.weight"));
        assertTrue(!ConvertedWeights.converts("model.embed_tokens.weight"));
        assertTrue(!ConvertedWeights.converts("model.layers.1.mlp.gate.weight"));
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3"))) {
            var w = ConvertedWeights.of(ck, WeightFormat.Q4, null);
            Matrix lm = w.matrix("lm_head.weight", 2048, 64);
            assertEquals(2048L * 2 * (16 + 4), lm.storageBytes()); // 16 code bytes + one fp32 scale per 32 weights
            Matrix embed = w.matrix("model.embed_tokens.weight", 2048, 64);
            assertEquals(2048L * 64 * 2, embed.storageBytes()); // bf16 as stored
            assertSame(ck, ConvertedWeights.of(ck, WeightFormat.AUTO, null));
        }
    }

    @Test
    void quantizedCopyOnDiskGivesTheSameModelAsQuantizingAtLoad(@TempDir Path tmp) throws Exception {
        Path model = tmp.resolve("tiny-v3");
        Files.createDirectories(model);
        try (var files = Files.list(TestData.model("tiny-v3"))) {
            for (Path f : files.toList()) {
                Files.createSymbolicLink(model.resolve(f.getFileName()), f.toAbsolutePath());
            }
        }
        int[] prompt = Golden.of("tiny-v3").prompts().get(1).tokens();
        try (Checkpoint ck = Checkpoint.open(model)) {
            float[] atLoad = Transformer.load(ck, WeightFormat.Q8).forward(
                    Transformer.load(ck, WeightFormat.Q8).newCache(), prompt);
            ConvertedWeights writer = new ConvertedWeights(ck, WeightFormat.Q8, model.resolve("epic-q8"), true);
            new Transformer(ck.config(), writer, LocalExperts.all(ck.config(), writer));
            assertTrue(Files.isRegularFile(model.resolve("epic-q8/lm_head.weight.qnt")));
            assertTrue(!Files.exists(model.resolve("epic-q8/model.embed_tokens.weight.qnt")));

            var mapped = (ConvertedWeights) ConvertedWeights.of(ck, WeightFormat.Q8, model);
            Transformer t = new Transformer(ck.config(), mapped, LocalExperts.all(ck.config(), mapped));
            assertTrue(mapped.summary().startsWith("q8: 0 converted"), mapped.summary());
            // Same weights and kernels, which give the same bits in every JIT tier (BatchInvarianceTest).
            assertArrayEquals(atLoad, t.forward(t.newCache(), prompt));
        }
    }

    /** bf16 over 16-bit weights is the stored weights (announced as auto); over fp8 it converts. */
    @Test
    void bf16OverABf16CheckpointIsTheStoredFormat() {
        try (Checkpoint bf16 = Checkpoint.open(TestData.model("tiny-v3"));
             Checkpoint fp8 = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            assertEquals(WeightFormat.AUTO, WeightFormat.BF16.effective(bf16));
            assertEquals(WeightFormat.BF16, WeightFormat.BF16.effective(fp8));
            assertEquals(WeightFormat.Q8, WeightFormat.Q8.effective(bf16));
            assertEquals(WeightFormat.AUTO, WeightFormat.AUTO.effective(fp8));
        }
    }

    @Test
    void rejectsUnknownFormat() {
        var e = assertThrows(IllegalArgumentException.class, () -> WeightFormat.parse("int3"));
        assertTrue(e.getMessage().contains("auto, bf16, q8 or q4"), e.getMessage());
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3f80, ConvertedWeights.bf16(1.0f));
        assertEquals((short) 0x3f80, ConvertedWeights.bf16(Float.intBitsToFloat(0x3f808000))); // tie -> even
        assertEquals((short) 0x3f82, ConvertedWeights.bf16(Float.intBitsToFloat(0x3f818000))); // tie -> even (up)
        assertEquals((short) 0x3f81, ConvertedWeights.bf16(Float.intBitsToFloat(0x3f808001)));
    }

    private static void synth(Path dir, long seed) throws Exception {
        SyntheticCheckpoint.write(Presets.byName("tiny-v3"), dir,
                new SyntheticCheckpoint.Options(SyntheticCheckpoint.WeightDtype.BF16, seed,
                        SyntheticCheckpoint.Options.DEFAULT_SHARD_BYTES), (done, total) -> {});
    }

    private static ConvertedWeights quantize(Checkpoint ck, Path model) {
        ConvertedWeights writer = new ConvertedWeights(ck, WeightFormat.Q8, model.resolve("epic-q8"), true);
        new Transformer(ck.config(), writer, LocalExperts.all(ck.config(), writer));
        return writer;
    }

    /** A synthetic tiny-v3 in {@code tmp/m} with its q8 copy written. */
    private static Path quantizedModel(Path tmp) throws Exception {
        Path model = tmp.resolve("m");
        synth(model, 1);
        try (Checkpoint ck = Checkpoint.open(model)) {
            quantize(ck, model);
        }
        return model;
    }

    private static ConvertedWeights loaded(Checkpoint ck, Path model) {
        var w = (ConvertedWeights) ConvertedWeights.of(ck, WeightFormat.Q8, model);
        new Transformer(ck.config(), w, LocalExperts.all(ck.config(), w));
        return w;
    }

    /** Same config and shapes (so the same fingerprint), new weights: the old copies must not be used. */
    @Test
    void copiesOfAReplacedCheckpointAreNotUsed(@TempDir Path tmp) throws Exception {
        Path model = quantizedModel(tmp);
        try (Checkpoint ck = Checkpoint.open(model)) {
            assertTrue(loaded(ck, model).summary().startsWith("q8: 0 converted"));
        }
        Thread.sleep(20); // a later modification time, whatever the file system's clock granularity
        synth(model, 2);
        try (Checkpoint ck = Checkpoint.open(model)) {
            String summary = loaded(ck, model).summary();
            assertTrue(summary.endsWith("0 mapped from null"), summary);

            // epic quantize over the stale copies clears them and records the new checkpoint.
            quantize(ck, model);
            assertTrue(loaded(ck, model).summary().startsWith("q8: 0 converted"));
        }
        // A directory without the record (an older epic's) is not trusted either.
        Files.delete(model.resolve("epic-q8").resolve(ConvertedWeights.SOURCE_FILE));
        try (Checkpoint ck = Checkpoint.open(model)) {
            assertTrue(loaded(ck, model).summary().endsWith("0 mapped from null"));
        }
    }

    /**
     * A copy recorded under the fingerprint before it sampled the weights (config and headers only) is
     * still used while the shards are the ones it was made from; with other shards it is not.
     */
    @Test
    void copiesRecordedUnderTheHeadersOnlyFingerprintAreStillUsed(@TempDir Path tmp) throws Exception {
        Path model = quantizedModel(tmp);
        Path record = model.resolve("epic-q8").resolve(ConvertedWeights.SOURCE_FILE);
        var json = new com.fasterxml.jackson.databind.ObjectMapper();
        var old = (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(record.toFile());
        old.put("fingerprint", dev.epic.model.CheckpointFingerprint.headersOnly(model).sha256());
        json.writeValue(record.toFile(), old);
        try (Checkpoint ck = Checkpoint.open(model)) {
            assertTrue(loaded(ck, model).summary().startsWith("q8: 0 converted"), "the copy is used");
        }
        Thread.sleep(20);
        synth(model, 2); // same headers, other weights and shard times
        try (Checkpoint ck = Checkpoint.open(model)) {
            assertTrue(loaded(ck, model).summary().endsWith("0 mapped from null"));
        }
    }

    @Test
    void corruptCopyIsOneErrorNamingTheFile(@TempDir Path tmp) throws Exception {
        Path model = quantizedModel(tmp);
        try (Checkpoint ck = Checkpoint.open(model)) {
            Path file = model.resolve("epic-q8/lm_head.weight.qnt");
            byte[] bytes = Files.readAllBytes(file);
            Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length / 2));
            var e = assertThrows(CheckpointException.class, () -> loaded(ck, model));
            assertTrue(e.getMessage().contains(file.toString()) && e.getMessage().contains("truncated"), e.getMessage());
            Files.write(file, new byte[10]);
            e = assertThrows(CheckpointException.class, () -> loaded(ck, model));
            assertTrue(e.getMessage().contains(file.toString()), e.getMessage());
        }
    }
}
