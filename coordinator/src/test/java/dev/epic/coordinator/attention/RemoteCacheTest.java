package dev.epic.coordinator.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.KvCacheDtype;
import dev.epic.proto.WorkerAnnouncement;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.Test;

/** The coordinator's count of a remote cache's pages shared with blocks kept on its worker (no worker needed). */
class RemoteCacheTest {
    private static AttentionEndpoint endpoint() {
        return new AttentionEndpoint("/epic/t/attention/a", WorkerAnnouncement.newBuilder().setWorkerId("a")
                .setAddress("127.0.0.1:1").setPrefixCacheBytes(1 << 20).setKvCacheBytes(1 << 20).build());
    }

    /**
     * Its leading run of blocks counts while they are kept: a block dropped ends the run there (the
     * worker's cache counts that page and every later one as its own), blocks that do not continue the
     * run or are not a page each are left out, and nothing counts before placement, on another worker, or
     * once the worker's stream has broken.
     */
    @Test
    void itCountsTheLeadingPagesItSharesWithBlocksStillKept() {
        Set<Long> kept = ConcurrentHashMap.newKeySet();
        kept.addAll(Set.of(1L, 2L, 3L, 4L, 5L, 6L));
        try (AttentionEndpoint w = endpoint()) {
            RemoteCache c = new RemoteCache(7, KvCacheDtype.FP32);
            c.reserve(100);
            c.shares(w, w.epoch(), 0, 16, new long[] {1, 2}, kept::contains);
            assertEquals(0, c.keptPositions(), "not placed yet");
            assertTrue(w.place(c));
            assertEquals(32, c.keptPositions(), "started from two blocks");
            long room = w.roomBytes(1);
            c.shares(w, w.epoch(), 48, 16, new long[] {3}, kept::contains);
            assertEquals(32, c.keptPositions(), "a block after a gap is not its leading run");
            c.shares(w, w.epoch(), 32, 8, new long[] {4}, kept::contains);
            assertEquals(32, c.keptPositions(), "a block of half a page is a copy on the worker");
            c.shares(w, w.epoch(), 32, 16, new long[] {5, 6}, kept::contains);
            assertEquals(64, c.keptPositions(), "two more kept from it");
            assertEquals(room + 32, w.roomBytes(1), "the worker's room counts them once");
            kept.remove(2L);
            assertEquals(16, c.keptPositions(), "a dropped block: its page and those after it count again");
            kept.add(2L);
            try (AttentionEndpoint other = endpoint()) {
                c.endpoint = other; // placed elsewhere (at the same epoch number): the blocks are not there
                assertEquals(0, c.keptPositions());
            }
            c.endpoint = w;
            assertEquals(64, c.keptPositions());
            w.close(); // the stream broke: the worker's caches and blocks went with it
            assertEquals(0, c.keptPositions());
        }
    }
}
