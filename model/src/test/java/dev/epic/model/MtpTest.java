package dev.epic.model;

import static dev.epic.kernels.VectorOps.argmax;
import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Mtp;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The multi-token-prediction layer against an independent numpy reference
 * (testdata/tiny-v3/mtp-reference.json, written by scripts/mtp-reference.py, whose main model
 * reproduces DeepSeek's golden logits to 1.7e-5), run as the scheduler runs it: the prompt in
 * chunks, then one position a step, each MTP row given the main model's hidden state and the token
 * that followed.
 */
class MtpTest {
    private static Checkpoint checkpoint;
    private static Transformer model;

    @BeforeAll
    static void load() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
        model = Transformer.load(checkpoint).enableMtp();
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    @Test
    void draftsAndLogitsMatchTheReferenceChunkedThenStepByStep() throws IOException {
        JsonNode root = new ObjectMapper().readTree(TestData.model("tiny-v3").resolve("mtp-reference.json").toFile());
        int greedy = Golden.of("tiny-v3").prompts().getFirst().greedyTokens().length;
        float worst = 0;
        int rowsChecked = 0;
        for (JsonNode c : root.get("cases")) {
            int[] s = Golden.ints(c.get("tokens"));
            int[] expectedArgmax = Golden.ints(c.get("mtp_argmax"));
            Map<Integer, float[]> rows = new HashMap<>();
            for (JsonNode r : c.get("rows")) {
                rows.put(r.get("position").asInt(), Golden.floats(r.get("logits")));
            }
            int prompt = s.length - greedy;
            KvCache cache = model.newCache();
            assertTrue(cache instanceof HeapKvCache);
            // Prompt: the main model in one chunk, the MTP layer in two (position 0, then the rest).
            float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(cache, Arrays.copyOf(s, prompt), 0)))
                    .hidden();
            float[] first = mtp(cache, 0, new int[] {s[1]}, hidden, 0);
            float[][] byPosition = new float[s.length - 1][];
            byPosition[0] = first;
            if (prompt > 1) {
                byPosition[prompt - 1] = mtp(cache, 1, Arrays.copyOfRange(s, 2, prompt + 1), hidden, 1);
            }
            // Then each generated token: the main model one position, the MTP layer that position.
            for (int p = prompt; p < s.length - 1; p++) {
                hidden = model.stepWithHidden(List.of(SequenceChunk.next(cache, s[p]))).hidden();
                byPosition[p] = mtp(cache, p, new int[] {s[p + 1]}, hidden, 0);
            }
            for (int p = 0; p < byPosition.length; p++) {
                if (byPosition[p] == null) {
                    continue; // inside the prompt's second MTP chunk: only its last row has logits
                }
                assertEquals(expectedArgmax[p], argmax(byPosition[p]), "case of " + s.length + " tokens, position " + p);
                float[] expected = rows.get(p);
                if (expected != null) {
                    float d = maxAbsDiff(expected, byPosition[p]);
                    assertTrue(d <= Golden.LOGIT_TOL, "position " + p + " max abs diff " + d);
                    worst = Math.max(worst, d);
                    rowsChecked++;
                }
            }
        }
        assertTrue(rowsChecked >= 10, "reference rows checked: " + rowsChecked);
        org.slf4j.LoggerFactory.getLogger(MtpTest.class).info("MTP logits: max abs diff {} over {} rows", worst,
                rowsChecked);
    }

    @Test
    void onlyRowsAskedForGetLogitsAndTheCacheHoldsTheMtpLayer() {
        KvCache cache = model.newCache();
        float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(cache, new int[] {5, 6, 7}, 0))).hidden();
        List<Mtp.Draft> out = model.mtp().step(List.of(new Mtp.Chunk(cache, 0, new int[] {6, 7, 8}, hidden, 0, false)));
        assertNull(out.getFirst());
        assertEquals(model.config().numHiddenLayers() + 1, model.cacheLayers());
        assertEquals(KvCacheDtype.FP32.bytesPerPosition(model.config(), model.cacheLayers()), model.kvBytesPerPosition());
    }

    /**
     * The module's copies of the embedding and lm_head hold the main model's bytes in DeepSeek's layout,
     * so one matrix serves both; a copy that differs in one byte is its own.
     */
    @Test
    void theMainEmbeddingAndHeadServeTheModuleWhereTheirBytesAreTheSame(@TempDir Path dir) throws IOException {
        assertTrue(model.mtpSharesEmbeddingAndHead());
        assertTrue(checkpoint.sameTensor("model.layers.4.shared_head.head.weight", "lm_head.weight"));
        assertFalse(checkpoint.sameTensor("lm_head.weight", "model.embed_tokens.weight")); // same shape, other bytes
        assertFalse(checkpoint.sameTensor("lm_head.weight", "no.such.tensor"));
        Path src = TestData.model("tiny-v3");
        try (var files = Files.list(src)) {
            for (Path f : files.toList()) {
                Files.copy(f, dir.resolve(f.getFileName()));
            }
        }
        String head = "model.layers.4.shared_head.head.weight";
        Path shard = dir.resolve(new ObjectMapper().readTree(dir.resolve("model.safetensors.index.json").toFile())
                .get("weight_map").get(head).asText());
        long at;
        try (var ch = java.nio.channels.FileChannel.open(shard, java.nio.file.StandardOpenOption.READ,
                java.nio.file.StandardOpenOption.WRITE)) {
            java.nio.ByteBuffer len = java.nio.ByteBuffer.allocate(8).order(java.nio.ByteOrder.LITTLE_ENDIAN);
            ch.read(len, 0);
            at = 8 + len.getLong(0) + checkpoint.info(head).begin() + 1; // the high byte of the first bf16
            java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(1);
            ch.read(b, at);
            b.put(0, (byte) (b.get(0) ^ 0x01));
            ch.write(b.rewind(), at);
        }
        try (Checkpoint changed = Checkpoint.open(dir)) {
            Transformer t = Transformer.load(changed).enableMtp();
            assertFalse(t.mtpSharesEmbeddingAndHead());
        }
    }

    @Test
    void aCheckpointWithoutAnMtpLayerSaysSo() {
        try (Checkpoint fp8 = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            Transformer t = Transformer.load(fp8);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, t::enableMtp);
            assertTrue(e.getMessage().contains("num_nextn_predict_layers is 0"), e.getMessage());
        }
    }

    private static float[] mtp(KvCache cache, int start, int[] next, float[] hidden, int hiddenRow) {
        return model.mtp().step(List.of(new Mtp.Chunk(cache, start, next, hidden, hiddenRow, true))).getFirst().logits();
    }
}
