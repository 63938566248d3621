package dev.epic.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.TestData;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.checkpoint.Checkpoint;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The caches' bookkeeping: for coordinators that draft with the MTP layer (its layer, its budget, its
 * blocks), and the KV budget's count of pages shared with kept prefix blocks.
 */
class SequenceCachesTest {
    private static Checkpoint checkpoint;
    private static AttentionLayers layers;
    private static int n;

    @BeforeAll
    static void open() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3")); // it has an MTP layer
        layers = AttentionLayers.load(checkpoint.config(), checkpoint);
        n = layers.count();
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    private static SequenceCaches caches(long kvCacheBytes) {
        return new SequenceCaches(layers, 8, kvCacheBytes, 64L << 20, KvCacheDtype.FP32);
    }

    private static SequenceCaches.Segment mtp(long id, int start, int length, int reserve) {
        return new SequenceCaches.Segment(id, start, length, reserve, List.of(), n + 1);
    }

    @Test
    void aCacheWithTheMtpLayerHoldsOneMoreLayerAndCountsItInTheBudget() {
        assertTrue(layers.hasMtpLayer());
        SequenceCaches caches = caches(1L << 30);
        Object owner = new Object();
        HeapKvCache plain = (HeapKvCache) caches.acquire(owner, 0, List.of(new SequenceCaches.Segment(1, 0, 4, 200)))
                .getFirst();
        long plainBytes = caches.heldBytes();
        HeapKvCache withMtp = (HeapKvCache) caches.acquire(owner, 0, List.of(mtp(2, 0, 4, 200))).getFirst();
        long mtpBytes = caches.heldBytes() - plainBytes;
        assertEquals(n, plain.layers());
        assertEquals(n + 1, withMtp.layers());
        assertEquals(plain.capacity(), withMtp.capacity());
        assertEquals(plainBytes * (n + 1), mtpBytes * n, "the MTP layer's positions count in the budget");

        // A budget that holds the plain cache's growth but not the MTP cache's refuses the MTP cache.
        long budget = caches.heldBytes() + 100L * KvCacheDtype.FP32.bytesPerPosition(layers.config());
        SequenceCaches tight = caches(budget);
        tight.acquire(owner, 0, List.of(new SequenceCaches.Segment(1, 0, 4, 200)));
        tight.acquire(owner, 0, List.of(mtp(2, 0, 4, 200)));
        assertEquals(caches.heldBytes(), tight.heldBytes());
        SequenceCaches.Refused r = assertThrows(SequenceCaches.Refused.class,
                () -> tight.acquire(owner, 0, List.of(mtp(3, 0, 4, 100))));
        assertEquals(List.of(3L), r.ids);
        tight.acquire(owner, 0, List.of(new SequenceCaches.Segment(4, 0, 4, 100))); // fits without the MTP layer
    }

    @Test
    void theMtpLayerTakesOnlyCachesMadeWithItFromWhereItsLastSegmentEnded() {
        SequenceCaches caches = caches(1L << 30);
        Object owner = new Object();
        KvCache c = caches.acquire(owner, 0, List.of(mtp(1, 0, 16, 16))).getFirst();
        assertEquals(16, c.capacity());
        caches.acquire(owner, 0, List.of(new SequenceCaches.Segment(2, 0, 5)));
        c.setLength(16); // the decoder's layers took positions 0-15
        caches.acquire(owner, n, List.of(new SequenceCaches.Segment(1, 0, 16)));
        caches.wroteMtpLayer(1, 16);
        // Chained drafts: one position past the last, then the next, beyond the decoder's length.
        caches.acquire(owner, n, List.of(new SequenceCaches.Segment(1, 16, 1)));
        caches.wroteMtpLayer(1, 17);
        assertEquals(17, c.capacity(), "a chained draft past the reservation grows the cache by what it needs");
        caches.acquire(owner, n, List.of(new SequenceCaches.Segment(1, 17, 1)));
        caches.wroteMtpLayer(1, 18);
        IllegalArgumentException gap = assertThrows(IllegalArgumentException.class,
                () -> caches.acquire(owner, n, List.of(new SequenceCaches.Segment(1, 19, 1))));
        assertTrue(gap.getMessage().contains("holds 18 positions of its MTP layer; a step cannot start at 19"),
                gap.getMessage());
        IllegalArgumentException without = assertThrows(IllegalArgumentException.class,
                () -> caches.acquire(owner, n, List.of(new SequenceCaches.Segment(2, 0, 1))));
        assertTrue(without.getMessage().contains("made without the MTP layer"), without.getMessage());
        IllegalArgumentException odd = assertThrows(IllegalArgumentException.class,
                () -> caches.acquire(owner, 0, List.of(new SequenceCaches.Segment(3, 0, 1, 0, List.of(), n + 2))));
        assertTrue(odd.getMessage().contains("or " + (n + 1) + " with the MTP layer"), odd.getMessage());
        assertEquals(2, caches.size(), "a refused message creates no cache");
    }

    @Test
    void blocksKeepTheMtpLayerAndGoOnlyIntoCachesOfTheSameLayers() {
        SequenceCaches caches = caches(1L << 30);
        Object owner = new Object();
        KvCache c = caches.acquire(owner, 0, List.of(mtp(1, 0, 40, 0))).getFirst();
        c.setLength(40);
        caches.acquire(owner, n, List.of(new SequenceCaches.Segment(1, 0, 31)));
        caches.wroteMtpLayer(1, 31);
        IllegalArgumentException ahead = assertThrows(IllegalArgumentException.class,
                () -> caches.keep(owner, 1, 0, 16, List.of(10L, 11L)));
        assertTrue(ahead.getMessage().contains("its MTP layer holds 31"), ahead.getMessage());
        caches.keep(owner, 1, 0, 16, List.of(10L));
        long block = caches.prefixBytes();
        assertEquals(KvCacheDtype.FP32.bytesPerPosition(layers.config(), n + 1) * 16, block);

        HeapKvCache restored = (HeapKvCache) caches.acquire(owner, 0,
                List.of(new SequenceCaches.Segment(2, 16, 2, 0, List.of(10L), n + 1))).getFirst();
        assertEquals(16, restored.length());
        caches.acquire(owner, n, List.of(new SequenceCaches.Segment(2, 16, 1))); // its MTP layer holds the 16
        IllegalArgumentException mixed = assertThrows(IllegalArgumentException.class,
                () -> caches.acquire(owner, 0, List.of(new SequenceCaches.Segment(3, 16, 2, 0, List.of(10L)))));
        assertTrue(mixed.getMessage().contains("cannot start from a prefix block of " + (n + 1)), mixed.getMessage());
    }

    /**
     * A kept block's page is counted once, by the prefix budget: in a KV budget of 420 positions, a
     * 300-position cache whose first 18 pages are kept holds 16 positions of its own (the page after them),
     * and a second cache started from those blocks takes 16 more, where it would take 304 without them
     * (and is refused when they are not kept). Once the blocks are dropped, each cache counts the shared
     * pages again, and nothing more fits.
     */
    @Test
    void pagesSharedWithKeptBlocksAreCountedOnceInTheKvBudget() {
        long perPosition = KvCacheDtype.FP32.bytesPerPosition(layers.config());
        List<Long> ids = java.util.stream.LongStream.rangeClosed(1, 18).boxed().toList();
        for (boolean keep : new boolean[] {true, false}) {
            SequenceCaches caches = caches(420 * perPosition);
            Object owner = new Object();
            KvCache first = caches.acquire(owner, 0, List.of(new SequenceCaches.Segment(1, 0, 300))).getFirst();
            first.setLength(300);
            assertEquals(304 * perPosition, caches.heldBytes(), "its pages, none kept");
            if (!keep) {
                SequenceCaches.Refused r = assertThrows(SequenceCaches.Refused.class, () -> caches.acquire(owner, 0,
                        List.of(new SequenceCaches.Segment(2, 0, 300))));
                assertTrue(r.exhausted);
                continue;
            }
            caches.keep(owner, 1, 0, 16, ids);
            assertEquals(16 * perPosition, caches.heldBytes(), "the kept pages are the prefix budget's");
            HeapKvCache second = (HeapKvCache) caches.acquire(owner, 0,
                    List.of(new SequenceCaches.Segment(2, 288, 12, 0, ids))).getFirst();
            assertEquals(304, second.capacity());
            assertEquals(288, second.keptPositions());
            assertEquals(32 * perPosition, caches.heldBytes());
            SequenceCaches.Refused third = assertThrows(SequenceCaches.Refused.class, () -> caches.acquire(owner, 0,
                    List.of(new SequenceCaches.Segment(3, 0, 400))));
            assertEquals(List.of(3L), third.ids, "its 400 positions do not fit beside the 32 held");
            caches.drop(owner, ids);
            assertEquals(2 * 304 * perPosition, caches.heldBytes(), "pages no block keeps count in each cache");
            assertThrows(SequenceCaches.Refused.class, () -> caches.acquire(owner, 0,
                    List.of(new SequenceCaches.Segment(4, 0, 16))));
        }
    }
}
