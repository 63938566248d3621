package dev.epic.coordinator.attention;

import dev.epic.model.KvCache;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.util.Set;

/**
 * Some sequences of a step cannot go on: their attention worker failed (their caches are gone with
 * it), none is live, or all are full. Only the {@link #lost()} sequences fail; the scheduler runs
 * the others again in the next step. Surfaces as gRPC UNAVAILABLE or RESOURCE_EXHAUSTED.
 */
public final class AttentionUnavailableException extends StatusRuntimeException {
    private final transient Set<KvCache> lost;

    public AttentionUnavailableException(Status status, Set<KvCache> lost) {
        super(status);
        this.lost = Set.copyOf(lost);
    }

    /** The caches (sequences) that cannot continue. */
    public Set<KvCache> lost() {
        return lost;
    }
}
