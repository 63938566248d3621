package dev.epic.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

class HeapKvCacheTest {
    private static final int RANK = 4;
    private static final int ROPE = 2;

    private static void fill(KvCache c, int layers, int from, int to) {
        for (int layer = 0; layer < layers; layer++) {
            for (int p = from; p < to; p++) {
                float v = layer * 1000 + p;
                c.write(layer, p, new float[] {v, v + 0.1f, v + 0.2f, v + 0.3f}, 0, new float[] {-v, -v - 0.5f}, 0);
            }
        }
    }

    /** Growing adds pages: what the cache holds stays where it is, and reads back unchanged. */
    @Test
    void growsByAddingPagesWithoutCopying() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000);
        fill(c, 2, 0, 16);
        assertEquals(16, c.capacity());
        float[] firstPage = c.pages(1, 16, RANK, ROPE).latent()[0];
        fill(c, 2, 16, 40);
        c.setLength(40);
        assertEquals(48, c.capacity(), "the granted room grows to the page that holds position 39");
        KvPages pages = c.pages(1, 40, RANK, ROPE);
        assertEquals(3, pages.latent().length);
        assertSame(firstPage, pages.latent()[0], "growing copied a page");
        float[] lat = new float[40 * RANK];
        float[] pe = new float[40 * ROPE];
        c.read(1, 40, lat, pe);
        assertEquals(1007.2f, lat[7 * RANK + 2]);
        assertEquals(1039.3f, lat[39 * RANK + 3]);
        assertEquals(-1039.5f, pe[39 * ROPE + 1]);
        assertEquals(1039.3f, pages.latent()[2][7 * RANK + 3], "position 39 is the third page's eighth");
    }

    /** Reserving grants room (what a budget counts) and allocates nothing; pages come as positions are written. */
    @Test
    void reservedRoomIsGrantedAndPagesComeWithWrites() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000);
        fill(c, 2, 0, 10);
        c.setLength(10);
        c.reserve(300);
        assertEquals(300, c.capacity());
        assertEquals(10, c.length());
        assertEquals(1, c.pagesHeld(), "reserving allocated pages");
        fill(c, 2, 10, 300);
        assertEquals(300, c.capacity(), "writes within the reserved room grew it");
        assertEquals(19, c.pagesHeld());
        assertEquals(19, c.pages(0, 300, RANK, ROPE).latent().length);
        assertThrows(IllegalArgumentException.class, () -> c.pages(0, 301, RANK, ROPE), "past the granted room");
        float[] all = new float[300 * RANK];
        c.read(0, 300, all, new float[300 * ROPE]);
        assertEquals(9.3f, all[9 * RANK + 3]);
        assertEquals(299.1f, all[299 * RANK + 1]);
    }

    @Test
    void reserveStopsAtTheContextLimit() {
        HeapKvCache c = new HeapKvCache(1, RANK, ROPE, 64);
        c.reserve(1_000_000);
        fill(c, 1, 0, 64);
        assertThrows(IllegalArgumentException.class, () -> fill(c, 1, 64, 65));
    }

    /** bf16 storage: each value rounded to nearest even on write (ties included), widened exactly on read. */
    @Test
    void aBf16CacheRoundsOnWriteAndWidensOnRead() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000, KvCacheDtype.BF16);
        float tieDown = 1f + 0x1p-8f;      // halfway between 1 and 1 + 2^-7: to the even one, 1
        float tieUp = 1f + 3 * 0x1p-8f;    // halfway between 1 + 2^-7 and 1 + 2^-6: to the even one, 1 + 2^-6
        float above = 1f + 0x1p-8f + 0x1p-20f;
        for (int p = 0; p < 40; p++) { // past the first growth
            c.write(1, p, new float[] {tieDown, tieUp, above, -0f}, 0, new float[] {p, 3.14159f}, 0);
        }
        c.setLength(40);
        float[] lat = new float[40 * RANK];
        float[] pe = new float[40 * ROPE];
        c.read(1, 40, lat, pe);
        assertEquals(1f, lat[39 * RANK]);
        assertEquals(1f + 0x1p-6f, lat[39 * RANK + 1]);
        assertEquals(1f + 0x1p-7f, lat[39 * RANK + 2]);
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(lat[39 * RANK + 3]));
        assertEquals(39f, pe[39 * ROPE]);
        assertEquals(3.140625f, pe[39 * ROPE + 1]);
        assertEquals(KvCacheDtype.BF16, c.dtype());
        assertEquals(new HeapKvCache(2, RANK, ROPE, 1000).bytesPerPosition() / 2, c.bytesPerPosition());
        short[] bits = c.latentsBf16(1, 40, RANK, ROPE);
        assertEquals((short) 0x3f80, bits[0]);
        assertArrayEquals(lat, c.latents(1, 40, RANK, ROPE), "the widened copy");
        assertThrows(UnsupportedOperationException.class,
                () -> new HeapKvCache(1, RANK, ROPE, 10).latentsBf16(0, 1, RANK, ROPE));
    }

    /** Kept blocks hold what the cache stored, and go back only into a cache of the same dtype. */
    @Test
    void blocksOfABf16CacheRestoreItsBits() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000, KvCacheDtype.BF16);
        fill(c, 2, 0, 32);
        c.setLength(32);
        KvBlock[] blocks = KvBlock.copy(c, 2, RANK, ROPE, 0, 16, 2);
        assertEquals(KvBlock.bytes(2, 16, RANK, ROPE, KvCacheDtype.FP32) / 2, blocks[0].bytes());
        HeapKvCache d = new HeapKvCache(2, RANK, ROPE, 1000, KvCacheDtype.BF16);
        blocks[0].writeTo(d, 0);
        blocks[1].writeTo(d, 16);
        d.setLength(32);
        for (int layer = 0; layer < 2; layer++) {
            assertArrayEquals(java.util.Arrays.copyOf(c.latentsBf16(layer, 32, RANK, ROPE), 32 * RANK),
                    java.util.Arrays.copyOf(d.latentsBf16(layer, 32, RANK, ROPE), 32 * RANK));
            assertArrayEquals(java.util.Arrays.copyOf(c.ropeKeysBf16(layer, 32, RANK, ROPE), 32 * ROPE),
                    java.util.Arrays.copyOf(d.ropeKeysBf16(layer, 32, RANK, ROPE), 32 * ROPE));
        }
        assertThrows(IllegalArgumentException.class, () -> blocks[0].writeTo(new HeapKvCache(2, RANK, ROPE, 1000), 0));
    }

    /**
     * A kept block is its cache's page, shared with every cache started from it: nothing is copied until a
     * cache writes into it, and then only that cache sees the write.
     */
    @Test
    void keptBlocksAreSharedPagesCopiedOnWrite() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000);
        fill(c, 2, 0, 40);
        c.setLength(40);
        KvBlock[] blocks = KvBlock.copy(c, 2, RANK, ROPE, 0, 16, 2);
        assertTrue(c.shares(0, blocks[0].page()) && c.shares(1, blocks[1].page()), "keeping copied the pages");
        HeapKvCache d = new HeapKvCache(2, RANK, ROPE, 1000);
        HeapKvCache e = new HeapKvCache(2, RANK, ROPE, 1000);
        for (HeapKvCache x : new HeapKvCache[] {d, e}) {
            blocks[0].writeTo(x, 0);
            blocks[1].writeTo(x, 16);
            x.setLength(32);
            assertTrue(x.shares(0, blocks[0].page()) && x.shares(1, blocks[1].page()), "starting copied the pages");
        }
        float[] before = new float[32 * RANK];
        c.read(0, 32, before, new float[32 * ROPE]);
        // d overwrites position 20 of layer 0 (a rolled-back draft, say): its own copy of page 1 takes it.
        d.write(0, 20, new float[] {-1, -2, -3, -4}, 0, new float[] {7, 8}, 0);
        assertFalse(d.shares(1, blocks[1].page()), "a write went into a shared page");
        assertTrue(d.shares(0, blocks[0].page()), "a page not written was copied");
        float[] dLat = new float[32 * RANK];
        float[] dPe = new float[32 * ROPE];
        d.read(0, 32, dLat, dPe);
        assertEquals(-3f, dLat[20 * RANK + 2]);
        assertEquals(8f, dPe[20 * ROPE + 1]);
        assertEquals(21.3f, dLat[21 * RANK + 3], "the copy holds the rest of the page");
        for (HeapKvCache x : new HeapKvCache[] {c, e}) {
            float[] lat = new float[32 * RANK];
            x.read(0, 32, lat, new float[32 * ROPE]);
            assertArrayEquals(before, lat, "another cache saw d's write");
        }
        // c writes past its kept pages as before; page 2 was never kept, so it is c's own.
        c.write(1, 39, new float[] {5, 5, 5, 5}, 0, new float[] {5, 5}, 0);
        assertTrue(c.shares(0, blocks[0].page()));

        // The KV budget counts the kept pages in the prefix cache's budget, not in the caches sharing them.
        assertEquals(32, c.keptPositions());
        assertEquals(32, e.keptPositions());
        assertEquals(16, d.keptPositions(), "its own copy of page 1 is its own");
        blocks[1].release(); // evicted: the caches still holding page 1 count it again
        assertEquals(16, c.keptPositions());
        assertEquals(16, e.keptPositions());
        blocks[0].release();
        assertEquals(0, c.keptPositions());
    }

    /** Blocks that do not line up with the cache's pages (or of another cache) are copies, with the same values. */
    @Test
    void blocksOffAPageAreCopies() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000);
        fill(c, 2, 0, 40);
        c.setLength(40);
        KvBlock[] blocks = KvBlock.copy(c, 2, RANK, ROPE, 8, 16, 2);
        assertFalse(c.shares(0, blocks[0].page()) || c.shares(1, blocks[0].page()));
        HeapKvCache d = new HeapKvCache(2, RANK, ROPE, 1000);
        blocks[0].writeTo(d, 0);
        blocks[1].writeTo(d, 16);
        d.setLength(32);
        for (int layer = 0; layer < 2; layer++) {
            float[] want = new float[40 * RANK];
            float[] wantPe = new float[40 * ROPE];
            c.read(layer, 40, want, wantPe);
            float[] got = new float[32 * RANK];
            float[] gotPe = new float[32 * ROPE];
            d.read(layer, 32, got, gotPe);
            assertArrayEquals(java.util.Arrays.copyOfRange(want, 8 * RANK, 40 * RANK), got);
            assertArrayEquals(java.util.Arrays.copyOfRange(wantPe, 8 * ROPE, 40 * ROPE), gotPe);
        }
        KvBlock[] small = KvBlock.copy(c, 2, RANK, ROPE, 0, 8, 2); // blocks of another size: copies too
        HeapKvCache e = new HeapKvCache(2, RANK, ROPE, 1000);
        small[0].writeTo(e, 0);
        small[1].writeTo(e, 8);
        e.setLength(16);
        assertFalse(e.shares(0, small[0].page()));
        float[] want = new float[16 * RANK];
        c.read(1, 16, want, new float[16 * ROPE]);
        float[] got = new float[16 * RANK];
        e.read(1, 16, got, new float[16 * ROPE]);
        assertArrayEquals(want, got);
    }
}
