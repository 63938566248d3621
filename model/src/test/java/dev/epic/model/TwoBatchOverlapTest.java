package dev.epic.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.attention.ExternalAttention;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mla;
import dev.epic.model.layers.SequenceRows;
import dev.epic.model.layers.Yarn;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.moe.RoutedExperts;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * {@link TwoBatchOverlap}: with it on, a step of several sequences runs each micro-batch's attention
 * while the other's routed experts compute, and gives the same bits as one batch.
 */
class TwoBatchOverlapTest {
    static Checkpoint ck;
    static ModelConfig c;
    static WeightSource w;
    /** The same model without the overlap: the bits to match. */
    static Transformer plain;
    static List<Golden.Prompt> prompts;

    @BeforeAll
    static void load() {
        ck = Checkpoint.open(TestData.model("tiny-v3"));
        c = ck.config();
        w = ConvertedWeights.of(ck, WeightFormat.AUTO, ck.directory());
        plain = Transformer.load(ck);
        prompts = Golden.of("tiny-v3").prompts();
    }

    @AfterAll
    static void close() {
        ck.close();
    }

    @Test
    void theSplitBalancesRowsAtSequenceBoundaries() {
        assertNull(TwoBatchOverlap.split(rows(5), false));
        assertEquals(1, rowsA(rows(1, 1), false));
        assertEquals(2, rowsA(rows(1, 1, 1, 1), false));
        assertEquals(40, rowsA(rows(40, 1, 1, 1), false));
        assertEquals(3, rowsA(rows(1, 1, 1, 40), false));
        assertEquals(7, rowsA(rows(3, 4, 2, 5), false));
        TwoBatchOverlap.Split s = TwoBatchOverlap.split(rows(3, 4, 2, 5), false);
        assertEquals(List.of(2, 5), s.b().stream().map(SequenceRows::length).toList());
        assertEquals(List.of(0, 2), s.b().stream().map(SequenceRows::firstRow).toList(), "B's rows from 0");
    }

    /** Where attention runs in process, a chunk across the middle row is cut there if both parts are long enough. */
    @Test
    void aLongChunkIsCutAtTheMiddleRow() {
        TwoBatchOverlap.Split one = TwoBatchOverlap.split(rows(64), true);
        assertEquals(32, one.rowsA());
        assertEquals(List.of(new SequenceRows(null, 0, 0, 32)), one.a());
        assertEquals(List.of(new SequenceRows(null, 32, 0, 32)), one.b(), "B's part starts where A's ends");
        TwoBatchOverlap.Split mixed = TwoBatchOverlap.split(rows(1, 1, 100, 1), true);
        assertEquals(51, mixed.rowsA());
        assertEquals(List.of(new SequenceRows(null, 0, 0, 1), new SequenceRows(null, 0, 1, 1),
                new SequenceRows(null, 0, 2, 49)), mixed.a());
        assertEquals(List.of(new SequenceRows(null, 49, 0, 51), new SequenceRows(null, 0, 51, 1)), mixed.b());
        assertNull(TwoBatchOverlap.split(rows(31), true), "a part would be under 16 rows");
        assertEquals(20, rowsA(rows(20, 30), true), "30 rows past the middle: 5 and 25, so the boundary");
        assertNull(TwoBatchOverlap.split(rows(40), false), "not where attention is elsewhere");
    }

    private static int rowsA(List<SequenceRows> sequences, boolean cut) {
        return TwoBatchOverlap.split(sequences, cut).rowsA();
    }

    @Test
    void eachMicroBatchAttendsWhileTheOthersExpertsComputeAndTheBitsAreOneBatchs() {
        Events events = new Events();
        Transformer overlapped = new Transformer(c, w, new RecordingExperts(LocalExperts.all(c, w), events),
                new RecordingAttention(c, w, events)).twoBatchOverlap(true);

        // Each model prefills three prompts alone (one sequence: no split), then runs one mixed step
        // (two decode tokens, a second chunk, a new prompt) and one decode step of all four.
        int[][] tokens = {prompts.get(0).tokens(), prompts.get(1).tokens(), prompts.get(2).tokens(),
            prompts.get(3).tokens()};
        List<KvCache> a = new ArrayList<>();
        List<KvCache> b = new ArrayList<>();
        for (int i = 0; i < 3; i++) {
            a.add(plain.newCache());
            b.add(overlapped.newCache());
            int[] first = Arrays.copyOf(tokens[i], i == 2 ? 5 : tokens[i].length);
            assertArrayEquals(plain.forward(a.get(i), first), overlapped.forward(b.get(i), first));
        }
        a.add(plain.newCache());
        b.add(overlapped.newCache());
        int[] rest = Arrays.copyOfRange(tokens[2], 5, tokens[2].length);
        events.list.clear();
        assertSameBits(plain.step(mixed(a, rest, tokens[3])), overlapped.step(mixed(b, rest, tokens[3])));

        // A = decode rows of sequences 0 and 1 and the second chunk of 2; B = the 64-token prompt.
        int rowsA = 2 + rest.length;
        int rowsB = tokens[3].length;
        List<String> want = new ArrayList<>();
        want.add("attention 0 " + rowsA);
        for (int l = 0; l < c.numHiddenLayers(); l++) {
            boolean moe = c.isMoeLayer(l);
            String inside = moe ? "  " : ""; // attention inside an experts call
            if (moe) {
                want.add("experts " + l + " " + rowsA);
            }
            want.add(inside + "attention " + l + " " + rowsB);
            if (moe) {
                want.add("experts " + l + " " + rowsB);
            }
            if (l + 1 < c.numHiddenLayers()) {
                want.add(inside + "attention " + (l + 1) + " " + rowsA);
            }
        }
        assertEquals(want, events.list);
        assertTrue(c.numHiddenLayers() > c.firstKDenseReplace(), "the model has MoE layers");

        int[] next = {3, 5, 7, 11};
        assertSameBits(plain.step(decode(a, next)), overlapped.step(decode(b, next)));
    }

    /**
     * With attention in process, a prompt prefilled alone is cut in two at its middle row (B's half attends
     * to A's, written at each layer just before), and a prompt joining decode rows is cut too: every
     * position's logits are the one-batch engine's bits.
     */
    @Test
    void aCutChunkGivesTheOneBatchBits() {
        Events events = new Events();
        Transformer overlapped = new Transformer(c, w, new RecordingExperts(LocalExperts.all(c, w), events))
                .twoBatchOverlap(true);
        int[] first = prompts.get(3).tokens(); // 64 tokens
        int[] second = Arrays.copyOf(prompts.get(4).tokens(), 40);
        KvCache a1 = plain.newCache();
        KvCache b1 = overlapped.newCache();
        assertSameBits(plain.step(List.of(new SequenceChunk(a1, first, 0, true))),
                overlapped.step(List.of(new SequenceChunk(b1, first, 0, true))));
        int moe = c.firstKDenseReplace();
        assertEquals(List.of("experts " + moe + " 32", "experts " + moe + " 32"), events.list.subList(0, 2),
                "the prompt cut at its middle row");

        KvCache a2 = plain.newCache();
        KvCache b2 = overlapped.newCache();
        events.list.clear();
        assertSameBits(plain.step(List.of(SequenceChunk.next(a1, 7), new SequenceChunk(a2, second, 0, true))),
                overlapped.step(List.of(SequenceChunk.next(b1, 7), new SequenceChunk(b2, second, 0, true))));
        assertEquals(List.of("experts " + moe + " 20", "experts " + moe + " 21"), events.list.subList(0, 2),
                "a decode row and 19 prompt rows, then the prompt's other 21");
        assertSameBits(plain.step(List.of(SequenceChunk.next(a1, 9), SequenceChunk.next(a2, 11))),
                overlapped.step(List.of(SequenceChunk.next(b1, 9), SequenceChunk.next(b2, 11))));
    }

    private static List<SequenceChunk> mixed(List<KvCache> caches, int[] rest, int[] prompt) {
        return List.of(SequenceChunk.next(caches.get(0), 9), SequenceChunk.next(caches.get(1), 13),
                SequenceChunk.next(caches.get(2), rest), SequenceChunk.next(caches.get(3), prompt));
    }

    private static List<SequenceChunk> decode(List<KvCache> caches, int[] next) {
        List<SequenceChunk> chunks = new ArrayList<>();
        for (int i = 0; i < caches.size(); i++) {
            chunks.add(SequenceChunk.next(caches.get(i), next[i]));
        }
        return chunks;
    }

    private static void assertSameBits(List<float[]> want, List<float[]> got) {
        assertEquals(want.size(), got.size());
        for (int i = 0; i < want.size(); i++) {
            assertArrayEquals(want.get(i), got.get(i), "sequence " + i);
        }
    }

    private static List<SequenceRows> rows(int... lengths) {
        List<SequenceRows> out = new ArrayList<>();
        int row = 0;
        for (int n : lengths) {
            out.add(new SequenceRows(null, 0, row, n));
            row += n;
        }
        return out;
    }

    /** What ran, in order; calls made while an experts call runs its {@code alongside} are indented. */
    private static final class Events {
        final List<String> list = new ArrayList<>();
        boolean alongside;

        void add(String e) {
            list.add((alongside ? "  " : "") + e);
        }
    }

    /** In-process experts, recording each call; alongside work runs before they compute, as remote ones do. */
    private record RecordingExperts(RoutedExperts experts, Events events) implements RoutedExperts {
        @Override
        public void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out) {
            events.add("experts " + layer + " " + rows);
            experts.forward(layer, x, rows, expertIds, weights, k, out);
        }

        @Override
        public void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out,
                Runnable alongside) {
            events.add("experts " + layer + " " + rows);
            events.alongside = true;
            try {
                alongside.run();
            } finally {
                events.alongside = false;
            }
            experts.forward(layer, x, rows, expertIds, weights, k, out);
        }
    }

    /** The model's own MLA, in heap caches, as external attention that records each call. */
    private static final class RecordingAttention implements ExternalAttention {
        private final ModelConfig config;
        private final List<Mla> layers = new ArrayList<>();
        private final Events events;

        RecordingAttention(ModelConfig c, WeightSource w, Events events) {
            this.config = c;
            this.events = events;
            for (int l = 0; l < c.numHiddenLayers(); l++) {
                layers.add(new Mla(c, w, l, Yarn.rope(c)));
            }
        }

        @Override
        public KvCache newCache() {
            return HeapKvCache.forModel(config, KvCacheDtype.FP32);
        }

        @Override
        public void forward(int layer, float[] x, int rows, List<SequenceRows> sequences, float[] y) {
            events.add("attention " + layer + " " + rows);
            layers.get(layer).forward(x, rows, sequences, y);
        }
    }
}
