package dev.epic.transport;

/**
 * ZooKeeper layout shared by workers and coordinators: {@code /epic/<cluster>/workers/<worker-id>}
 * (expert workers) and {@code /epic/<cluster>/attention/<worker-id>} (attention workers) ephemeral
 * nodes whose data is a JSON {@link Announcements announcement}. A coordinator watches the folders
 * of its cluster and ignores (with a log line) workers whose model fingerprint differs from its own.
 */
public final class ZkLayout {
    public static final String ROOT = "/epic";
    public static final String DEFAULT_CLUSTER = "default";

    private ZkLayout() {}

    public static String workersPath(String cluster) {
        return clusterPath(cluster) + "/workers";
    }

    /**
     * The expert placement the coordinators' rebalancer publishes: per worker id, the extra experts
     * of each layer it should host in its redundant slots ({@link Placements}).
     */
    public static String placementPath(String cluster) {
        return clusterPath(cluster) + "/placement";
    }

    /** Where the coordinators elect the one that rebalances. */
    public static String rebalancerPath(String cluster) {
        return clusterPath(cluster) + "/rebalancer";
    }

    /** Where attention workers register. */
    public static String attentionWorkersPath(String cluster) {
        return clusterPath(cluster) + "/attention";
    }

    private static String clusterPath(String cluster) {
        if (cluster == null || cluster.isEmpty() || cluster.contains("/")) {
            throw new IllegalArgumentException("cluster name must be non-empty without '/': '" + cluster + "'");
        }
        return ROOT + "/" + cluster;
    }

    public static String workerPath(String cluster, String workerId) {
        return workersPath(cluster) + "/" + workerId;
    }
}
