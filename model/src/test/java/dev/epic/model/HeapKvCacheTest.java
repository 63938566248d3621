package dev.epic.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

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

    @Test
    void growsByCopyingWhatItHolds() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000);
        fill(c, 2, 0, 16);
        float[] before = c.latents(1, 16, RANK, ROPE);
        fill(c, 2, 16, 40);
        c.setLength(40);
        assertNotSame(before, c.latents(1, 40, RANK, ROPE));
        float[] lat = new float[40 * RANK];
        float[] pe = new float[40 * ROPE];
        c.read(1, 40, lat, pe);
        assertEquals(1007.2f, lat[7 * RANK + 2]);
        assertEquals(-1039.5f, pe[39 * ROPE + 1]);
    }

    @Test
    void reservedRoomIsWrittenInPlace() {
        HeapKvCache c = new HeapKvCache(2, RANK, ROPE, 1000);
        fill(c, 2, 0, 10);
        c.setLength(10);
        c.reserve(300);
        float[] storage = c.latents(0, 10, RANK, ROPE);
        float[] lat = new float[10 * RANK];
        float[] pe = new float[10 * ROPE];
        c.read(0, 10, lat, pe);
        assertEquals(10, c.length());
        assertEquals(9.3f, lat[9 * RANK + 3]);
        fill(c, 2, 10, 300);
        assertSame(storage, c.latents(0, 300, RANK, ROPE), "a write within the reserved room regrew the cache");
        float[] all = new float[300 * RANK];
        c.read(0, 300, all, new float[300 * ROPE]);
        assertArrayEquals(lat, java.util.Arrays.copyOf(all, 10 * RANK));
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
}
