package dev.epic.transport;

import dev.epic.proto.WorkerAnnouncement;
import io.grpc.BindableService;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.HealthStatusManager;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.grpc.MetricCollectingServerInterceptor;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;
import java.util.function.BiFunction;
import java.util.function.Consumer;
import java.util.function.IntSupplier;
import org.apache.curator.framework.CuratorFramework;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * What every worker process (expert or attention) runs around its service: a gRPC server on a port,
 * announced in ZooKeeper only once it can serve, and the standard grpc.health.v1 service reporting
 * SERVING from then until the drain starts (so Kubernetes gRPC readiness probes work).
 * {@link #close()} drains: deregister first (coordinators stop sending here), let in-flight messages
 * finish, then stop.
 */
public final class WorkerServer implements AutoCloseable {
    /**
     * The health service name a liveness probe asks for: SERVING while the process answers (and, on a
     * coordinator, its engine thread lives), also while the unnamed service says NOT_SERVING because
     * workers are missing. A restart helps only when this one fails. (Nothing answers while weights
     * load, before the server starts: a startup probe covers that.)
     */
    public static final String LIVENESS = "liveness";

    private static final Logger log = LoggerFactory.getLogger(WorkerServer.class);

    /**
     * Where to serve and announce. port 0 picks a free port; a null workerId becomes
     * {@code <idPrefix>-<host>-<port>}; metricsPort &gt; 0 serves Prometheus metrics on
     * {@code http://host:metricsPort/metrics}, -1 on any free port (tests), 0 not at all;
     * maxInboundBytes is the largest message gRPC reads (larger ones are RESOURCE_EXHAUSTED unread).
     */
    public record Settings(String host, int port, String zkConnect, String workerId, int zkSessionTimeoutMillis,
            long drainMillis, int metricsPort, int maxInboundBytes) {
        public Settings {
            if (maxInboundBytes < 1) {
                throw new IllegalArgumentException("max inbound message size must be positive: " + maxInboundBytes);
            }
        }
    }

    private final Server server;
    private final CuratorFramework zk;
    private final WorkerRegistration registration;
    private final HealthStatusManager health;
    private final IntSupplier inFlight;
    private final String address;
    private final String workerId;
    private final long drainMillis;
    private final ProcessMeters meters;
    private boolean killed; // guarded by this
    private boolean closed; // guarded by this
    private boolean deregistered; // guarded by this

    private WorkerServer(Server server, CuratorFramework zk, WorkerRegistration registration, HealthStatusManager health,
            IntSupplier inFlight, String address, String workerId, long drainMillis, ProcessMeters meters) {
        this.server = server;
        this.meters = meters;
        this.zk = zk;
        this.registration = registration;
        this.health = health;
        this.inFlight = inFlight;
        this.address = address;
        this.workerId = workerId;
        this.drainMillis = drainMillis;
    }

    /**
     * Binds, then registers {@code announce(workerId, address)} under ZooKeeper {@code folder}.
     *
     * @param inFlight messages being computed now (the drain waits for them)
     * @param serviceMeters registers the service's own meters (called before the worker is announced)
     */
    public static WorkerServer start(Settings s, String idPrefix, String folder, BindableService service,
            IntSupplier inFlight, Consumer<MeterRegistry> serviceMeters,
            BiFunction<String, String, WorkerAnnouncement> announce) throws Exception {
        ProcessMeters meters = ProcessMeters.open(s.host(), s.metricsPort());
        try {
            Gauge.builder("epic.worker.in.flight", inFlight, IntSupplier::getAsInt)
                    .description("messages being computed now").register(meters.registry());
            serviceMeters.accept(meters.registry());
            return start(s, idPrefix, folder, service, inFlight, announce, meters);
        } catch (Exception | Error e) {
            meters.close();
            throw e;
        }
    }

    private static WorkerServer start(Settings s, String idPrefix, String folder, BindableService service,
            IntSupplier inFlight, BiFunction<String, String, WorkerAnnouncement> announce, ProcessMeters meters)
            throws Exception {
        HealthStatusManager health = new HealthStatusManager();
        health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, HealthCheckResponse.ServingStatus.NOT_SERVING);
        health.setStatus(LIVENESS, HealthCheckResponse.ServingStatus.SERVING); // it answers: alive
        Server server = bind(s, NettyServerBuilder.forAddress(new InetSocketAddress(s.host(), s.port()))
                // Handlers run on the connection's event loop: a message is computed and answered
                // without a hop to an executor thread and back. On the 2-core bench machine that hop
                // halved batch-1 decode through attention workers (two more wake-ups per layer).
                // Messages of one stream are sequential anyway; concurrent streams (other
                // coordinators) sit on other event loops, and kernel loops started while the pool is
                // busy run on their caller.
                .directExecutor()
                .maxInboundMessageSize(s.maxInboundBytes())
                .permitKeepAliveTime(5, TimeUnit.SECONDS)
                .permitKeepAliveWithoutCalls(true)
                // A coordinator that vanishes without closing its connection (host crash, partition)
                // is noticed within 40 s: its streams end and their caches go.
                .keepAliveTime(30, TimeUnit.SECONDS)
                .keepAliveTimeout(10, TimeUnit.SECONDS)
                .addService(service)
                .addService(health.getHealthService())
                .intercept(new MetricCollectingServerInterceptor(meters.registry()))
                .build());
        String address = Ports.hostPort(s.host(), server.getPort());
        String workerId = s.workerId() != null ? s.workerId()
                : idPrefix + "-" + s.host().replace(':', '_') + "-" + server.getPort();
        CuratorFramework zk;
        try {
            zk = WorkerRegistration.connect(s.zkConnect(), s.zkSessionTimeoutMillis());
        } catch (Exception e) {
            server.shutdownNow();
            throw e;
        }
        try {
            WorkerRegistration reg = WorkerRegistration.register(zk, folder, announce.apply(workerId, address), 30_000);
            health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, HealthCheckResponse.ServingStatus.SERVING);
            return new WorkerServer(server, zk, reg, health, inFlight, address, workerId, s.drainMillis(), meters);
        } catch (Exception e) {
            zk.close();
            server.shutdownNow();
            throw e;
        }
    }

    private static Server bind(Settings s, Server server) throws IOException {
        try {
            return server.start();
        } catch (IOException e) {
            if (Ports.isBindFailure(e)) {
                throw Ports.inUse(s.host(), s.port());
            }
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

    /** The worker's ZooKeeper client (for watching what the coordinators publish). */
    public CuratorFramework zk() {
        return zk;
    }

    /** Replaces this worker's announcement, e.g. when it hosts other experts; ignored once draining. */
    public synchronized void reannounce(WorkerAnnouncement announcement) throws Exception {
        if (!closed && !killed && !deregistered) {
            registration.update(announcement);
        }
    }

    /**
     * Stops serving at once without draining, as a crash would (for failover tests): connections
     * break, but the ZooKeeper node stays, as a crashed process's does until its session expires,
     * until {@link #close()}.
     */
    public synchronized void kill() {
        if (closed || killed) {
            return;
        }
        killed = true;
        server.shutdownNow();
    }

    /** Graceful drain: deregister, finish in-flight messages, stop. Idempotent; after kill it only deregisters. */
    @Override
    public synchronized void close() {
        if (closed) {
            return;
        }
        closed = true;
        if (killed) {
            if (!deregistered) {
                deregistered = true;
                registration.close();
            }
            zk.close();
            meters.close();
            return;
        }
        deregister();
        zk.close();
        // Coordinators drop this worker when they see the node vanish; until then they may still send.
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(drainMillis);
        try {
            Thread.sleep(Math.min(drainMillis, 200));
            while (inFlight.getAsInt() > 0 && System.nanoTime() < deadline) {
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
        meters.close();
        log.info("worker {} stopped", workerId);
    }

    /**
     * The drain's first step, alone: health NOT_SERVING (readiness probes take the pod out of
     * rotation) and the ZooKeeper node deleted (coordinators stop sending here). The server keeps
     * serving what still comes until {@link #close()}. Idempotent.
     */
    public synchronized void deregister() {
        if (deregistered) {
            return;
        }
        deregistered = true;
        log.info("draining worker {}", workerId);
        health.enterTerminalState();
        registration.close();
    }

    /** The port serving /metrics; 0 when off. */
    public int metricsPort() {
        return meters.port();
    }
}
