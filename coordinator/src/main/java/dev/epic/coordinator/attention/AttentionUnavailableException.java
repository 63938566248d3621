package dev.epic.coordinator.attention;

import dev.epic.model.KvCache;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Map;
import java.util.Set;

/**
 * A step could not run all its attention: some sequences cannot go on ({@link #lost()}: their
 * worker failed and their KV cache went with it, no worker is live, or none has room), and the
 * step must run again for the others, unchanged. {@code lost} may be empty: then nothing is lost
 * (sequences on their first chunk whose worker failed were simply placed elsewhere) and the step
 * just runs again. Each lost sequence fails with its own status (UNAVAILABLE or RESOURCE_EXHAUSTED).
 */
public final class AttentionUnavailableException extends StatusRuntimeException {
    private final transient Map<KvCache, Status> lost;

    /** @param status a summary for logs (and for callers that fail everything) */
    public AttentionUnavailableException(Status status, Map<KvCache, Status> lost) {
        super(status);
        this.lost = Map.copyOf(lost);
    }

    /** The caches (sequences) that cannot continue. */
    public Set<KvCache> lost() {
        return lost.keySet();
    }

    /** What ends sequence {@code cache}: its own status. */
    public StatusRuntimeException failureOf(KvCache cache) {
        Status s = lost.get(cache);
        return s == null ? this : s.asRuntimeException();
    }
}
