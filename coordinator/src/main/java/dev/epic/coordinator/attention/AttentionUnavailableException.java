package dev.epic.coordinator.attention;

import dev.epic.model.KvCache;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Map;
import java.util.Set;

/**
 * A step could not run all its attention, and must run again, unchanged, for the sequences that go
 * on. Some sequences cannot go on ({@link #lost()}: their worker failed and their KV cache went with
 * it, or no worker is live); others found no room ({@link #noRoom()}: their worker's KV budget could
 * not hold their growth, or no worker could take them as new sequences), which the scheduler may
 * answer by preempting sequences on that worker rather than failing them. Both may be empty: then
 * sequences on their first chunk whose worker failed or refused them were simply placed elsewhere,
 * and the step just runs again. Each sequence that ends, ends with its own status (UNAVAILABLE or
 * RESOURCE_EXHAUSTED). Sequences that started from kept prefix blocks their worker lost or would not
 * take before computing anything for them ({@link #restart()}) start again from their first token.
 */
public final class AttentionUnavailableException extends StatusRuntimeException {
    private final transient Map<KvCache, Status> lost;
    private final transient Map<KvCache, Status> noRoom;
    private final transient Map<KvCache, Set<KvCache>> sharing;
    private final transient Set<KvCache> restart;

    /** @param status a summary for logs (and for callers that fail everything) */
    public AttentionUnavailableException(Status status, Map<KvCache, Status> lost) {
        this(status, lost, Map.of(), Map.of(), Set.of());
    }

    /**
     * @param noRoom  sequences their worker (or every worker) had no room for, with the refusal
     * @param sharing for each of those held by a worker, the step's sequences on that worker (itself included)
     * @param restart sequences to start again from their first token (their restored prefix is gone)
     */
    public AttentionUnavailableException(Status status, Map<KvCache, Status> lost, Map<KvCache, Status> noRoom,
            Map<KvCache, Set<KvCache>> sharing, Set<KvCache> restart) {
        super(status);
        this.lost = Map.copyOf(lost);
        this.noRoom = Map.copyOf(noRoom);
        this.sharing = Map.copyOf(sharing);
        this.restart = Set.copyOf(restart);
    }

    /**
     * The caches (sequences) that started from kept prefix blocks which their worker lost, or would not
     * take, before it computed anything for them: they start again from their first token, elsewhere.
     */
    public Set<KvCache> restart() {
        return restart;
    }

    /** The caches (sequences) that cannot continue. */
    public Set<KvCache> lost() {
        return lost.keySet();
    }

    /** The caches (sequences) that found no room: they end, or wait while others make room. */
    public Set<KvCache> noRoom() {
        return noRoom.keySet();
    }

    /**
     * The step's sequences on the worker that had no room for {@code cache}, itself included: what
     * preempting could free for it. Only itself when it is not held by a worker (a new sequence none
     * could take).
     */
    public Set<KvCache> sharingWorkerWith(KvCache cache) {
        return sharing.getOrDefault(cache, Set.of(cache));
    }

    /** What ends sequence {@code cache}: its own status. */
    public StatusRuntimeException failureOf(KvCache cache) {
        Status s = lost.getOrDefault(cache, noRoom.get(cache));
        return s == null ? this : s.asRuntimeException();
    }
}
