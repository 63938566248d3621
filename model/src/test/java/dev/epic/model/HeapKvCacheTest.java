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
}
