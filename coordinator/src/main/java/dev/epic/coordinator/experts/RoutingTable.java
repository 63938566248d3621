package dev.epic.coordinator.experts;

import dev.epic.proto.LayerExperts;
import dev.epic.transport.ExpertRanges;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Immutable snapshot: per layer, expert id -> workers announcing it (replicas). A worker's own
 * experts count in every layer, its redundant experts (placed by the rebalancer) in their layer only.
 * Liveness within the snapshot changes as workers fail ({@link WorkerEndpoint#isLive}); membership
 * and announcement changes publish a new table.
 */
final class RoutingTable {
    /** Replicas of each expert in layers without redundant experts. */
    private final WorkerEndpoint[][] replicas;
    /** Layers with redundant experts: their full expert -> replicas table. */
    private final Map<Integer, WorkerEndpoint[][]> byLayer = new HashMap<>();
    /** The MTP layer's: only the workers that announce it, with their own experts (never redundant ones). */
    private final WorkerEndpoint[][] mtpReplicas;
    private final List<WorkerEndpoint> workers;

    RoutingTable(int experts, Collection<WorkerEndpoint> workers) {
        List<List<WorkerEndpoint>> by = new ArrayList<>(experts);
        for (int e = 0; e < experts; e++) {
            by.add(new ArrayList<>(2));
        }
        Map<Integer, List<List<WorkerEndpoint>>> extra = new HashMap<>();
        for (WorkerEndpoint w : workers) {
            for (int e : w.announcement().getExpertsList()) {
                if (e < experts) {
                    by.get(e).add(w);
                }
            }
            for (LayerExperts l : w.announcement().getRedundantList()) {
                List<List<WorkerEndpoint>> layer = extra.computeIfAbsent(l.getLayer(), k -> new ArrayList<>());
                while (layer.size() < experts) {
                    layer.add(new ArrayList<>(1));
                }
                for (int e : l.getExpertsList()) {
                    if (e < experts) {
                        layer.get(e).add(w);
                    }
                }
            }
        }
        this.replicas = new WorkerEndpoint[experts][];
        this.mtpReplicas = new WorkerEndpoint[experts][];
        for (int e = 0; e < experts; e++) {
            replicas[e] = by.get(e).toArray(WorkerEndpoint[]::new);
            mtpReplicas[e] = by.get(e).stream().filter(w -> w.announcement().getMtpLayer())
                    .toArray(WorkerEndpoint[]::new);
        }
        for (var l : extra.entrySet()) {
            WorkerEndpoint[][] table = new WorkerEndpoint[experts][];
            for (int e = 0; e < experts; e++) {
                List<WorkerEndpoint> all = new ArrayList<>(by.get(e));
                for (WorkerEndpoint w : l.getValue().get(e)) {
                    if (!all.contains(w)) {
                        all.add(w);
                    }
                }
                table[e] = all.toArray(WorkerEndpoint[]::new);
            }
            byLayer.put(l.getKey(), table);
        }
        this.workers = List.copyOf(workers);
    }

    int experts() {
        return replicas.length;
    }

    List<WorkerEndpoint> workers() {
        return workers;
    }

    /** This layer's expert -> replicas table: look it up once per layer call, then {@link #pick} from it. */
    WorkerEndpoint[][] layer(int layer) {
        WorkerEndpoint[][] table = byLayer.get(layer);
        return table != null ? table : replicas;
    }

    /** The MTP layer's expert -> replicas table (workers announcing it only), to {@link #pick} from. */
    WorkerEndpoint[][] mtpLayer() {
        return mtpReplicas;
    }

    /**
     * Whether every expert of the MTP layer has a healthy worker (as {@link #missing} counts): one that
     * failed lately is probed until it answers, and the layer runs in the coordinator until then.
     */
    boolean coversMtpLayer() {
        for (WorkerEndpoint[] r : mtpReplicas) {
            boolean covered = false;
            for (WorkerEndpoint w : r) {
                covered |= w.isHealthy();
            }
            if (!covered) {
                return false;
            }
        }
        return true;
    }

    int replicaCount(int layer, int expert) {
        return layer(layer)[expert].length;
    }

    /**
     * A live replica of expert e from {@code layer}'s table ({@link #layer}), taken round-robin from
     * (e + rotation): one call spreads an expert's rows over its replicas (rotation = the row), so a
     * hot expert's rows share out over the workers hosting it. Workers in {@code failed} (those that
     * already failed in this call) are passed over, and a suspect one (failed lately, not yet
     * answering its probe) is taken only when no healthy replica is live: a hung replica would
     * otherwise cost a whole deadline again each time its backoff ran out. null if none is live.
     */
    static WorkerEndpoint pick(WorkerEndpoint[][] layer, int expert, int rotation, long nowNanos,
            Set<WorkerEndpoint> failed) {
        WorkerEndpoint[] r = layer[expert];
        int n = r.length;
        WorkerEndpoint suspect = null;
        for (int i = 0; i < n; i++) {
            WorkerEndpoint w = r[Math.floorMod(expert + rotation + i, n)];
            if (w.isLive(nowNanos) && !failed.contains(w)) {
                if (w.isHealthy()) {
                    return w;
                }
                if (suspect == null) {
                    suspect = w;
                }
            }
        }
        return suspect;
    }

    /**
     * Experts with no healthy worker among the workers' own experts (none registered, or all failed
     * lately), as ranges ("" when covered). Redundant experts come and go with the load, so they never count.
     */
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
