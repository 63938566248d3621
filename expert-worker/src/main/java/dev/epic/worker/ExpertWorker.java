package dev.epic.worker;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.Protocol;
import dev.epic.transport.WorkerServer;
import dev.epic.transport.ZkLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running expert worker: gRPC ExpertService on a port, announced in ZooKeeper under
 * {@code /epic/<cluster>/workers/<id>} once it can serve, with a health service and a graceful
 * drain ({@link WorkerServer}).
 */
public final class ExpertWorker implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ExpertWorker.class);

    /** What to serve and where to announce it. port 0 picks a free port. */
    public record Settings(String host, int port, String zkConnect, String cluster, String workerId, int capacity,
            int zkSessionTimeoutMillis, long drainMillis, int metricsPort) {
        public Settings {
            if (capacity <= 0) {
                throw new IllegalArgumentException("capacity must be positive: " + capacity);
            }
        }
    }

    private final WorkerServer server;

    private ExpertWorker(WorkerServer server) {
        this.server = server;
    }

    /** Starts serving {@code shard} (already loaded) and registers in ZooKeeper. */
    public static ExpertWorker start(ExpertShard shard, CheckpointFingerprint fingerprint, int moeLayers,
            Settings s) throws Exception {
        ExpertServiceImpl service = new ExpertServiceImpl(shard, fingerprint, s.capacity(), moeLayers);
        WorkerServer server = WorkerServer.start(
                new WorkerServer.Settings(s.host(), s.port(), s.zkConnect(), s.workerId(), s.zkSessionTimeoutMillis(),
                        s.drainMillis(), s.metricsPort()),
                "w", ZkLayout.workersPath(s.cluster()), service, service::inFlight, service::bindMetrics,
                (id, address) -> {
                    service.workerId(id);
                    WorkerAnnouncement.Builder a = WorkerAnnouncement.newBuilder()
                            .setWorkerId(id)
                            .setAddress(address)
                            .setFingerprint(ModelFingerprint.newBuilder().setName(fingerprint.name())
                                    .setSha256(fingerprint.sha256()))
                            .setCapacity(s.capacity())
                            .setPid(ProcessHandle.current().pid())
                            .setProtocolVersion(Protocol.VERSION);
                    for (int e : shard.experts()) {
                        a.addExperts(e);
                    }
                    return a.build();
                });
        log.info("expert worker {} serving experts {} of {} ({}) on {}, {} MiB of expert weights resident",
                server.workerId(), ExpertRanges.format(shard.experts()), fingerprint.name(), fingerprint.shortHash(),
                server.address(), String.format("%.1f", shard.residentBytes() / 1048576.0));
        return new ExpertWorker(server);
    }

    public String address() {
        return server.address();
    }

    public String workerId() {
        return server.workerId();
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /** Graceful drain: deregister, finish in-flight messages, stop. Idempotent. */
    @Override
    public void close() {
        server.close();
    }
}
