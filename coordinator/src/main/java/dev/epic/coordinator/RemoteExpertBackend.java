package dev.epic.coordinator;

import dev.epic.coordinator.experts.DispatchStats;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.config.ModelConfig;
import dev.epic.proto.WorkerAnnouncement;
import io.micrometer.core.instrument.MeterRegistry;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/** Routed experts on expert workers found through ZooKeeper. */
public final class RemoteExpertBackend implements ExpertBackend, AutoCloseable {
    private final RemoteExperts experts;

    private RemoteExpertBackend(RemoteExperts experts) {
        this.experts = experts;
    }

    /** Connects to ZooKeeper and starts watching the cluster's workers; dispatch meters go nowhere. */
    public static RemoteExpertBackend connect(String zkConnect, String cluster, CheckpointFingerprint fingerprint,
            ModelConfig config, RemoteExperts.Options options) throws InterruptedException {
        return connect(zkConnect, cluster, fingerprint, config, options, null);
    }

    /** As above, with the dispatch meters in {@code registry} (null: nowhere). */
    public static RemoteExpertBackend connect(String zkConnect, String cluster, CheckpointFingerprint fingerprint,
            ModelConfig config, RemoteExperts.Options options, MeterRegistry registry) throws InterruptedException {
        if (config.nRoutedExperts() == null) {
            throw new IllegalArgumentException("model has no routed experts: nothing to serve from expert workers");
        }
        return new RemoteExpertBackend(RemoteExperts.connect(zkConnect, cluster, fingerprint, config.nRoutedExperts(),
                config.hiddenSize(), options, registry));
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
    public List<String> downWorkers() {
        return experts.downWorkerIds();
    }

    @Override
    public List<dev.epic.proto.RefusedWorker> refusedWorkers() {
        return experts.refusedWorkers();
    }

    @Override
    public Optional<DispatchStats> dispatchStats() {
        return Optional.of(experts.stats());
    }

    @Override
    public void close() {
        experts.close(); // closes the ZooKeeper client it opened
    }
}
