package dev.epic.coordinator;

import dev.epic.coordinator.experts.DispatchStats;
import dev.epic.proto.WorkerAnnouncement;
import java.util.List;
import java.util.Optional;

/** Where the served model's routed experts run, as far as admission and ModelInfo care. */
public interface ExpertBackend {
    /** Experts with no live worker now, as ranges like "3-5,9"; "" when all are covered. */
    String missingExperts();

    /** Live expert workers (empty when experts run in-process). */
    List<WorkerAnnouncement> workers();

    /** Ids of workers that count as down now (failed lately, probed until they answer). */
    default List<String> downWorkers() {
        return List.of();
    }

    /** Registered workers refused (another model, protocol or weight format), with why. */
    default List<dev.epic.proto.RefusedWorker> refusedWorkers() {
        return List.of();
    }

    /** Dispatch traffic and latency to the workers; empty when experts run in-process. */
    default Optional<DispatchStats> dispatchStats() {
        return Optional.empty();
    }

    /** All experts in this process: always covered. */
    static ExpertBackend local() {
        return new ExpertBackend() {
            @Override
            public String missingExperts() {
                return "";
            }

            @Override
            public List<WorkerAnnouncement> workers() {
                return List.of();
            }
        };
    }
}
