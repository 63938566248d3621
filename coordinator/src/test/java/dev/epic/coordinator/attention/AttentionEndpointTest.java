package dev.epic.coordinator.attention;

import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.epic.proto.AttendRequest;
import dev.epic.proto.PrefixKeep;
import dev.epic.proto.WorkerAnnouncement;
import java.util.List;
import org.junit.jupiter.api.Test;

/** What an endpoint's next message tells its worker about prefix blocks (no worker needed: nothing is sent). */
class AttentionEndpointTest {
    private static AttentionEndpoint endpoint() {
        return new AttentionEndpoint("/epic/t/attention/a", WorkerAnnouncement.newBuilder().setWorkerId("a")
                .setAddress("127.0.0.1:1").setPrefixCacheBytes(1 << 20).build());
    }

    private static PrefixKeep keep(long cache, int start, long... ids) {
        PrefixKeep.Builder k = PrefixKeep.newBuilder().setCacheId(cache).setStart(start).setBlockPositions(16);
        for (long id : ids) {
            k.addBlockIds(id);
        }
        return k.build();
    }

    /**
     * The worker drops before it keeps (so that keeps fit its budget): a block evicted before its keep
     * was sent is left out of the keep, which splits around it, and is not sent as a drop.
     */
    @Test
    void blocksEvictedBeforeTheirKeepWasSentAreLeftOut() {
        try (AttentionEndpoint w = endpoint()) {
            long epoch = w.epoch();
            w.keep(epoch, keep(7, 32, 1, 2, 3, 4));
            w.drop(epoch, 2);
            w.drop(epoch, 4);
            w.drop(epoch, 9); // kept by an earlier message
            AttendRequest.Builder next = AttendRequest.newBuilder();
            w.drainPrefixBlocks(next);
            assertEquals(List.of(9L), next.getDroppedPrefixBlocksList());
            assertEquals(List.of(keep(7, 32, 1), keep(7, 64, 3)), next.getPrefixKeepsList());

            AttendRequest.Builder after = AttendRequest.newBuilder();
            w.drainPrefixBlocks(after);
            assertEquals(0, after.getPrefixKeepsCount() + after.getDroppedPrefixBlocksCount(), "sent once");
            w.drop(epoch, 3); // kept by the message above: the worker drops it
            w.drainPrefixBlocks(after);
            assertEquals(List.of(3L), after.getDroppedPrefixBlocksList());
        }
    }

    /** Blocks queued for an earlier epoch (the worker's stream broke since) are not sent: they went with it. */
    @Test
    void aClosedStreamTakesItsQueuedBlocks() {
        try (AttentionEndpoint w = endpoint()) {
            long epoch = w.epoch();
            w.keep(epoch, keep(7, 0, 1));
            w.close(); // a new epoch
            w.keep(epoch, keep(7, 16, 2));
            w.drop(epoch, 1);
            AttendRequest.Builder next = AttendRequest.newBuilder();
            w.drainPrefixBlocks(next);
            assertEquals(0, next.getPrefixKeepsCount() + next.getDroppedPrefixBlocksCount());
        }
    }
}
