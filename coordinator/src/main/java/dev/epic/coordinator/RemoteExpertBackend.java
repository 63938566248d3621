package dev.epic.coordinator;

import dev.epic.coordinator.experts.ExpertsUnavailableException;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.config.ModelConfig;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.ZkLayout;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;

/** Routed experts on expert workers found through ZooKeeper (one Curator client for both). */
public final class RemoteExpertBackend implements ExpertBackend, AutoCloseable {
    private final CuratorFramework zk;
    private final RemoteExperts experts;

    private RemoteExpertBackend(CuratorFramework zk, RemoteExperts experts) {
        this.zk = zk;
        this.experts = experts;
    }

    /** Connects to ZooKeeper and starts watching the cluster's workers. */
    public static RemoteExpertBackend connect(String zkConnect, String cluster, CheckpointFingerprint fingerprint,
            ModelConfig config, RemoteExperts.Options options) throws InterruptedException {
        if (config.nRoutedExperts() == null) {
            throw new IllegalArgumentException("model has no routed experts: nothing to serve from expert workers");
        }
        CuratorFramework zk = CuratorFrameworkFactory.builder()
                .connectString(zkConnect)
                .sessionTimeoutMs(15_000)
                .connectionTimeoutMs(10_000)
                .retryPolicy(new ExponentialBackoffRetry(200, 10, 2_000))
                .build();
        zk.start();
        if (!zk.blockUntilConnected(30, TimeUnit.SECONDS)) {
            zk.close();
            throw new ExpertsUnavailableException("cannot connect to ZooKeeper at " + zkConnect + " within 30 s");
        }
        String c = cluster == null ? ZkLayout.DEFAULT_CLUSTER : cluster;
        RemoteExperts experts = RemoteExperts.create(zk, c, fingerprint, config.nRoutedExperts(), config.hiddenSize(),
                options, null);
        return new RemoteExpertBackend(zk, experts);
    }

    public RemoteExperts experts() {
        return experts;
    }

    public boolean awaitCoverage(Duration timeout) throws InterruptedException {
        return experts.awaitCoverage(timeout);
    }

    @Override
    public String missingExperts() {
        return experts.missingExperts();
    }

    @Override
    public List<WorkerAnnouncement> workers() {
        return experts.workerAnnouncements();
    }

    @Override
    public void close() {
        experts.close();
        zk.close();
    }
}
