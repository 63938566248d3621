package dev.epic.coordinator.experts;

import dev.epic.transport.ExpertRanges;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;

/**
 * Immutable snapshot: expert id -> workers announcing it (replicas). Liveness within the snapshot
 * changes as workers fail ({@link WorkerEndpoint#isLive}); membership changes publish a new table.
 */
final class RoutingTable {
    private final WorkerEndpoint[][] replicas;
    private final List<WorkerEndpoint> workers;

    RoutingTable(int experts, Collection<WorkerEndpoint> workers) {
        List<List<WorkerEndpoint>> by = new ArrayList<>(experts);
        for (int e = 0; e < experts; e++) {
            by.add(new ArrayList<>(2));
        }
        for (WorkerEndpoint w : workers) {
            for (int e : w.announcement().getExpertsList()) {
                if (e < experts) {
                    by.get(e).add(w);
                }
            }
        }
        this.replicas = new WorkerEndpoint[experts][];
        for (int e = 0; e < experts; e++) {
            replicas[e] = by.get(e).toArray(WorkerEndpoint[]::new);
        }
        this.workers = List.copyOf(workers);
    }

    int experts() {
        return replicas.length;
    }

    List<WorkerEndpoint> workers() {
        return workers;
    }

    int replicaCount(int expert) {
        return replicas[expert].length;
    }

    /**
     * A live replica of expert e: replicas are taken round-robin starting at (e + rotation), so one
     * call sends each expert to one replica and successive calls spread the load. null if none is live.
     */
    WorkerEndpoint pick(int expert, int rotation, long nowNanos) {
        WorkerEndpoint[] r = replicas[expert];
        int n = r.length;
        for (int i = 0; i < n; i++) {
            WorkerEndpoint w = r[Math.floorMod(expert + rotation + i, n)];
            if (w.isLive(nowNanos)) {
                return w;
            }
        }
        return null;
    }

    /** Experts with no healthy replica (none registered, or all failed lately), as ranges ("" when covered). */
    String missing() {
        List<Integer> miss = new ArrayList<>();
        for (int e = 0; e < replicas.length; e++) {
            boolean covered = false;
            for (WorkerEndpoint w : replicas[e]) {
                covered |= w.isHealthy();
            }
            if (!covered) {
                miss.add(e);
            }
        }
        return ExpertRanges.format(miss.stream().mapToInt(Integer::intValue).toArray());
    }
}
