package dev.epic.worker;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.Protocol;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.ExponentialBackoffRetry;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running expert worker: gRPC ExpertService on a port, announced in ZooKeeper only once it can
 * serve. The standard grpc.health.v1 service reports SERVING from then until the drain starts, so
 * Kubernetes gRPC readiness probes work. {@link #close()} drains: deregister first (coordinators stop routing here), let in-flight
 * messages finish, then stop the server.
 */
public final class ExpertWorker implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ExpertWorker.class);

    /** What to serve and where to announce it. port 0 picks a free port. */
    public record Settings(String host, int port, String zkConnect, String cluster, String workerId, int capacity,
            int zkSessionTimeoutMillis, long drainMillis) {
        public Settings {
            if (capacity <= 0) {
                throw new IllegalArgumentException("capacity must be positive: " + capacity);
            }
        }
    }

    private final Server server;
    private final CuratorFramework zk;
    private final WorkerRegistration registration;
    private final ExpertServiceImpl service;
    private final HealthStatusManager health;
    private final String address;
    private final String workerId;
    private final long drainMillis;
    private volatile boolean closed;

    private ExpertWorker(Server server, CuratorFramework zk, WorkerRegistration registration, ExpertServiceImpl service,
            HealthStatusManager health, String address, String workerId, long drainMillis) {
        this.server = server;
        this.health = health;
        this.zk = zk;
        this.registration = registration;
        this.service = service;
        this.address = address;
        this.workerId = workerId;
        this.drainMillis = drainMillis;
    }

    /** Starts serving {@code shard} (already loaded) and registers in ZooKeeper. */
    public static ExpertWorker start(ExpertShard shard, CheckpointFingerprint fingerprint, int moeLayers,
            Settings s) throws Exception {
        ExpertServiceImpl service = new ExpertServiceImpl(shard, fingerprint, s.capacity(), moeLayers);
        HealthStatusManager health = new HealthStatusManager();
        health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, HealthCheckResponse.ServingStatus.NOT_SERVING);
        Server server = NettyServerBuilder.forAddress(new InetSocketAddress(s.host(), s.port()))
                // Handlers run on the connection's event loop: a dispatch message is computed and
                // answered without a hop to an executor thread and back (one thread wake-up less
                // each way per MoE layer). Messages of one stream are sequential anyway.
                .directExecutor()
                .maxInboundMessageSize(Integer.MAX_VALUE)
                .permitKeepAliveTime(5, TimeUnit.SECONDS)
                .permitKeepAliveWithoutCalls(true)
                .addService(service)
                .addService(health.getHealthService())
                .build()
                .start();
        int port = server.getPort();
        String address = s.host() + ":" + port;
        String workerId = s.workerId() != null ? s.workerId() : "w-" + s.host().replace(':', '_') + "-" + port;
        service.workerId(workerId);
        CuratorFramework zk = CuratorFrameworkFactory.builder()
                .connectString(s.zkConnect())
                .sessionTimeoutMs(s.zkSessionTimeoutMillis())
                .connectionTimeoutMs(Math.min(s.zkSessionTimeoutMillis(), 15_000))
                .retryPolicy(new ExponentialBackoffRetry(200, 10, 2_000))
                .build();
        zk.start();
        try {
            if (!zk.blockUntilConnected(30, TimeUnit.SECONDS)) {
                throw new IllegalStateException("cannot connect to ZooKeeper at " + s.zkConnect() + " within 30 s");
            }
            WorkerAnnouncement.Builder a = WorkerAnnouncement.newBuilder()
                    .setWorkerId(workerId)
                    .setAddress(address)
                    .setFingerprint(ModelFingerprint.newBuilder().setName(fingerprint.name()).setSha256(fingerprint.sha256()))
                    .setCapacity(s.capacity())
                    .setPid(ProcessHandle.current().pid())
                    .setProtocolVersion(Protocol.VERSION);
            for (int e : shard.experts()) {
                a.addExperts(e);
            }
            WorkerRegistration reg = WorkerRegistration.register(zk, s.cluster(), a.build(), 30_000);
            log.info("expert worker {} serving experts {} of {} ({}) on {}, {} MiB of expert weights resident",
                    workerId, ExpertRanges.format(shard.experts()), fingerprint.name(), fingerprint.shortHash(), address,
                    String.format("%.1f", shard.residentBytes() / 1048576.0));
            health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, HealthCheckResponse.ServingStatus.SERVING);
            return new ExpertWorker(server, zk, reg, service, health, address, workerId, s.drainMillis());
        } catch (Exception e) {
            zk.close();
            server.shutdownNow();
            throw e;
        }
    }

    public String address() {
        return address;
    }

    public String workerId() {
        return workerId;
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /** Graceful drain: deregister, finish in-flight messages, stop. Idempotent. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        log.info("draining expert worker {}", workerId);
        health.enterTerminalState(); // NOT_SERVING: readiness probes take the pod out of rotation
        registration.close();
        zk.close();
        // Coordinators drop this worker when they see the node vanish; until then they may still send.
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(drainMillis);
        try {
            Thread.sleep(Math.min(drainMillis, 200));
            while (service.inFlight() > 0 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            server.shutdown();
            if (!server.awaitTermination(Math.max(1, TimeUnit.NANOSECONDS.toMillis(deadline - System.nanoTime())),
                    TimeUnit.MILLISECONDS)) {
                server.shutdownNow(); // open idle streams end here; coordinators reconnect elsewhere
                server.awaitTermination(2, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            server.shutdownNow();
        }
        log.info("expert worker {} stopped", workerId);
    }
}
