package dev.epic.model;

import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.moe.RoutedExperts;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Chunked prefill, mixed batches and input validation of {@link Transformer#step}. */
class StepTest {
    /** Same math on the same rows; only accumulation inside batched kernels may differ. */
    static final float TOL = 1e-5f;

    static Checkpoint checkpoint;
    static Transformer model;
    static List<Golden.Prompt> prompts;

    @BeforeAll
    static void load() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
        model = Transformer.load(checkpoint);
        prompts = Golden.of("tiny-v3").prompts();
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    @Test
    void chunkedPrefillEqualsOneChunkAndTokenByToken() {
        int[] tokens = prompts.get(3).tokens(); // 64 tokens
        float[] whole = model.forward(model.newCache(), tokens);
        assertTrue(maxAbsDiff(prompts.get(3).prefillLogits(), whole) <= GoldenTest.LOGIT_TOL);

        KvCache chunked = model.newCache();
        float[] last = null;
        int[] cuts = {0, 10, 40, 64};
        for (int i = 0; i + 1 < cuts.length; i++) {
            last = model.forward(chunked, Arrays.copyOfRange(tokens, cuts[i], cuts[i + 1]));
        }
        assertTrue(maxAbsDiff(whole, last) <= TOL, "chunked: " + maxAbsDiff(whole, last));

        KvCache single = model.newCache();
        for (int t : tokens) {
            last = model.forward(single, t);
        }
        assertTrue(maxAbsDiff(whole, last) <= TOL, "token by token: " + maxAbsDiff(whole, last));

        // the caches continue identically
        float[] a = model.forward(chunked, 7);
        float[] b = model.forward(single, 7);
        assertTrue(maxAbsDiff(a, b) <= TOL);
    }

    @Test
    void allPositionLogitsMatchPrefixPrefills() {
        int[] tokens = prompts.get(2).tokens(); // 17 tokens
        float[] all = model.step(List.of(new SequenceChunk(model.newCache(), tokens, 0, true))).getFirst();
        int vocab = model.config().vocabSize();
        assertEquals(tokens.length * vocab, all.length);
        for (int len : new int[] {1, 6, 17}) {
            float[] prefix = model.forward(model.newCache(), Arrays.copyOf(tokens, len));
            float[] row = Arrays.copyOfRange(all, (len - 1) * vocab, len * vocab);
            assertTrue(maxAbsDiff(prefix, row) <= TOL, "prefix " + len);
        }
    }

    @Test
    void batchedSequencesEqualOneAtATime() {
        // alone
        List<float[]> alone = new ArrayList<>();
        List<KvCache> aloneCaches = new ArrayList<>();
        for (int p = 0; p < 4; p++) {
            KvCache c = model.newCache();
            alone.add(model.forward(c, prompts.get(p).tokens()));
            aloneCaches.add(c);
        }
        // together, and with one RoutedExperts call per MoE layer per step
        AtomicInteger calls = new AtomicInteger();
        LocalExperts local = LocalExperts.all(model.config(), checkpoint);
        RoutedExperts counting = (layer, x, rows, ids, w, k, out) -> {
            calls.incrementAndGet();
            local.forward(layer, x, rows, ids, w, k, out);
        };
        Transformer counted = new Transformer(model.config(), checkpoint, counting);
        List<KvCache> caches = new ArrayList<>();
        List<SequenceChunk> chunks = new ArrayList<>();
        for (int p = 0; p < 4; p++) {
            caches.add(counted.newCache());
            chunks.add(SequenceChunk.next(caches.get(p), prompts.get(p).tokens()));
        }
        List<float[]> together = counted.step(chunks);
        long moeLayers = java.util.stream.IntStream.range(0, 4).filter(model.config()::isMoeLayer).count();
        assertEquals(moeLayers, calls.get());
        for (int p = 0; p < 4; p++) {
            assertTrue(maxAbsDiff(alone.get(p), together.get(p)) <= TOL, "prompt " + p);
        }

        // a mixed step: decode tokens for sequences 0 and 2, a prefill chunk continuing sequence 1
        List<float[]> mixed = counted.step(List.of(SequenceChunk.next(caches.get(0), 5),
                SequenceChunk.next(caches.get(1), 9, 10, 11), SequenceChunk.next(caches.get(2), 6)));
        float[][] expected = {model.forward(aloneCaches.get(0), 5), model.forward(aloneCaches.get(1), 9, 10, 11),
                model.forward(aloneCaches.get(2), 6)};
        for (int i = 0; i < 3; i++) {
            assertTrue(maxAbsDiff(expected[i], mixed.get(i)) <= TOL, "mixed chunk " + i);
        }
        assertEquals(prompts.get(1).tokens().length + 3, caches.get(1).length());
    }

    @Test
    void rollbackByRestartingEarlier() {
        int[] tokens = prompts.get(1).tokens();
        KvCache c = model.newCache();
        model.forward(c, tokens);
        model.forward(c, 42, 43);
        float[] again = model.step(List.of(new SequenceChunk(c, new int[] {99}, tokens.length))).getFirst();
        int[] direct = Arrays.copyOf(tokens, tokens.length + 1);
        direct[tokens.length] = 99;
        assertTrue(maxAbsDiff(model.forward(model.newCache(), direct), again) <= TOL);
        assertEquals(tokens.length + 1, c.length());
    }

    @Test
    void rejectsBadInput() {
        KvCache c = model.newCache();
        var e = assertThrows(IllegalArgumentException.class, () -> model.forward(c, 3, 2048));
        assertTrue(e.getMessage().contains("2048") && e.getMessage().contains("[0, 2048)"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.forward(c, -1));
        assertEquals(0, c.length(), "a rejected step leaves the cache alone");
        e = assertThrows(IllegalArgumentException.class,
                () -> model.step(List.of(new SequenceChunk(c, new int[] {1}, 3))));
        assertTrue(e.getMessage().contains("starts at position 3"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class,
                () -> model.step(List.of(SequenceChunk.next(c, 1), SequenceChunk.next(c, 2))));
        assertTrue(e.getMessage().contains("same KV cache"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> model.step(List.of()));
    }

    @Test
    void rejectsPositionsBeyondMaxPositionEmbeddings() throws Exception {
        ModelConfig small = TestData.withContext("tiny-v3", 8);
        Transformer t = new Transformer(small, checkpoint, LocalExperts.all(small, checkpoint));
        KvCache c = t.newCache();
        t.forward(c, 1, 2, 3, 4, 5, 6, 7);
        t.forward(c, 8);
        var e = assertThrows(IllegalArgumentException.class, () -> t.forward(c, 9));
        assertTrue(e.getMessage().contains("max_position_embeddings 8"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> t.forward(t.newCache(), new int[9]));
    }
}
