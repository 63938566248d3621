package dev.epic.transport;

/**
 * ZooKeeper layout shared by expert workers and coordinators:
 * {@code /epic/<cluster>/workers/<worker-id>} ephemeral nodes whose data is a JSON
 * {@link Announcements announcement}. A coordinator watches the workers folder of its cluster and
 * ignores (with a log line) workers whose model fingerprint differs from its own.
 */
public final class ZkLayout {
    public static final String ROOT = "/epic";
    public static final String DEFAULT_CLUSTER = "default";

    private ZkLayout() {}

    public static String workersPath(String cluster) {
        if (cluster == null || cluster.isEmpty() || cluster.contains("/")) {
            throw new IllegalArgumentException("cluster name must be non-empty without '/': '" + cluster + "'");
        }
        return ROOT + "/" + cluster + "/workers";
    }

    public static String workerPath(String cluster, String workerId) {
        return workersPath(cluster) + "/" + workerId;
    }
}
