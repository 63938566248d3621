package dev.epic.coordinator;

import dev.epic.coordinator.api.GenerationServiceImpl;
import dev.epic.coordinator.api.MalformedRequests;
import dev.epic.coordinator.experts.DispatchStats;
import dev.epic.coordinator.metrics.ServingMetrics;
import dev.epic.coordinator.scheduler.PromptLookup;
import dev.epic.coordinator.scheduler.Scheduler;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.transport.WorkerServer;
import io.grpc.Server;
import io.grpc.health.v1.HealthCheckResponse.ServingStatus;
import io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.services.ProtoReflectionServiceV1;
import io.grpc.services.HealthStatusManager;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.grpc.MetricCollectingServerInterceptor;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.IOException;
import java.net.InetSocketAddress;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running coordinator: the GenerationService over one {@link Scheduler}, plus grpc.health.v1
 * (SERVING while the engine runs, every expert has a live worker, and with remote attention some
 * attention worker is live) and server reflection, on one gRPC port.
 */
public final class CoordinatorServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CoordinatorServer.class);
    public static final String SERVICE = GenerationServiceGrpc.SERVICE_NAME;

    private final Server server;
    private final Scheduler scheduler;
    private final HealthStatusManager health;
    private final ScheduledExecutorService healthCheck;
    private final String host;
    private final ServingWarmup warmup;
    private final Runnable checkHealth;
    private final java.util.concurrent.atomic.AtomicBoolean closed = new java.util.concurrent.atomic.AtomicBoolean();

    private CoordinatorServer(Server server, Scheduler scheduler, HealthStatusManager health,
            ScheduledExecutorService healthCheck, String host, ServingWarmup warmup, Runnable checkHealth) {
        this.server = server;
        this.warmup = warmup;
        this.checkHealth = checkHealth;
        this.scheduler = scheduler;
        this.health = health;
        this.healthCheck = healthCheck;
        this.host = host;
    }

    /** Binds {@code host:port} (port 0 = any free port) and starts serving; meters go nowhere. */
    public static CoordinatorServer start(ServedModel model, ExpertBackend experts, SchedulerOptions options,
            String host, int port) throws IOException {
        return start(model, experts, options, host, port, new SimpleMeterRegistry());
    }

    /**
     * As {@link #start(ServedModel, ExpertBackend, SchedulerOptions, String, int)}, with the serving
     * meters (scheduler, requests, gRPC calls) in {@code registry}; the process's JVM meters come with
     * the registry (ProcessMeters).
     */
    public static CoordinatorServer start(ServedModel model, ExpertBackend experts, SchedulerOptions options,
            String host, int port, MeterRegistry registry) throws IOException {
        return start(model, experts, options, host, port, registry, GenerationServiceImpl.STALLED_READER);
    }

    /** As above; a Generate stream whose client takes none of its messages for {@code stalledReader} is ended. */
    public static CoordinatorServer start(ServedModel model, ExpertBackend experts, SchedulerOptions options,
            String host, int port, MeterRegistry registry, java.time.Duration stalledReader) throws IOException {
        if (options.prefixDisk() != null && options.prefixDisk().identity() == null) {
            options = options.withPrefixDisk(options.prefixDisk().identifiedBy(model.numerics()));
        }
        Scheduler scheduler = new Scheduler(model.transformer(), options,
                experts.dispatchStats().<java.util.function.Supplier<DispatchStats.Snapshot>>map(d -> d::snapshot)
                        .orElse(() -> null)).start();
        HealthStatusManager health = new HealthStatusManager();
        ServingWarmup warmup = new ServingWarmup();
        health.setStatus(WorkerServer.LIVENESS, ServingStatus.SERVING);
        ServingMetrics metrics = ServingMetrics.bind(registry, scheduler);
        Server server;
        try {
            server = NettyServerBuilder.forAddress(new InetSocketAddress(host, port))
                    .addService(MalformedRequests.guard(
                            new GenerationServiceImpl(model, scheduler, experts, metrics, stalledReader, warmup::pending)))
                    .intercept(new MetricCollectingServerInterceptor(registry))
                    .addService(health.getHealthService())
                    .addService(ProtoReflectionServiceV1.newInstance())
                    .addService(v1alphaReflection()) // older grpcurl speaks only v1alpha
                    .build()
                    .start();
        } catch (IOException | RuntimeException e) {
            scheduler.close();
            throw e;
        }
        ScheduledExecutorService check = Executors.newSingleThreadScheduledExecutor(
                Thread.ofPlatform().name("epic-health").daemon(true).factory());
        Runnable checkHealth = () -> {
            boolean canServe = !scheduler.failed() && experts.missingExperts().isEmpty()
                    && (model.attention() == null || model.attention().hasLiveWorker());
            warmup.poll(canServe, scheduler, model.transformer());
            boolean ready = canServe && warmup.settled();
            ServingStatus s = ready ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
            health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, s);
            health.setStatus(SERVICE, s);
            // Only a dead engine thread is fixed by a restart; missing workers and draining are not.
            health.setStatus(WorkerServer.LIVENESS, scheduler.failed() ? ServingStatus.NOT_SERVING : ServingStatus.SERVING);
        };
        check.scheduleWithFixedDelay(checkHealth, 0, 1, TimeUnit.SECONDS);
        PromptLookup drafts = options.speculation();
        log.info("coordinator serving {} ({}) on {}:{}: max-batch {}, max-queue {}, prefill budget {} tokens, "
                        + "context {}{}{}", model.name(), model.fingerprint().shortHash(), host, server.getPort(),
                options.maxBatch(), options.maxQueue(), options.prefillBudget(), model.maxContext(),
                drafts.mtp() ? ", drafts by the MTP layer" : drafts.enabled() ? ", up to " + drafts.tokens()
                        + " drafts a step by prompt lookup" : "",
                model.transformer().twoBatchOverlap() ? ", two-batch overlap" : "");
        return new CoordinatorServer(server, scheduler, health, check, host, warmup, checkHealth);
    }

    /**
     * Runs the forward warm-up ({@link ServingWarmup}) as soon as the cluster can serve; until it has
     * run, health says NOT_SERVING. Returns this.
     */
    public CoordinatorServer warmUp() {
        warmup.request();
        checkHealth.run(); // now, not at the next tick
        return this;
    }

    /** Waits up to {@code timeout} for the warm-up asked for by {@link #warmUp} to end; true if it did. */
    public boolean awaitWarmUp(java.time.Duration timeout) throws InterruptedException {
        return warmup.await(timeout);
    }

    @SuppressWarnings("deprecation")
    private static io.grpc.BindableService v1alphaReflection() {
        return io.grpc.protobuf.services.ProtoReflectionService.newInstance();
    }

    public int port() {
        return server.getPort();
    }

    /** host:port clients dial. */
    public String target() {
        return dev.epic.transport.Ports.hostPort(host.equals("0.0.0.0") || host.equals("::") ? "127.0.0.1" : host, port());
    }

    public Scheduler scheduler() {
        return scheduler;
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /**
     * A graceful stop (SIGTERM under Kubernetes): health turns NOT_SERVING and the gRPC server takes no
     * new calls (GOAWAY: clients reconnect elsewhere, readiness probes fail), so new requests get
     * UNAVAILABLE, and the running and queued ones get up to {@code timeout} to finish before
     * {@link #close} cancels the rest. Returns whether they all finished.
     */
    public boolean drain(java.time.Duration timeout) {
        healthCheck.shutdownNow();
        try {
            healthCheck.awaitTermination(1, TimeUnit.SECONDS); // a check under way must not set SERVING after us
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        health.setStatus(HealthStatusManager.SERVICE_NAME_ALL_SERVICES, ServingStatus.NOT_SERVING);
        health.setStatus(SERVICE, ServingStatus.NOT_SERVING);
        // No new calls: clients get GOAWAY and go to another coordinator, calls under way go on.
        server.shutdown();
        int open = scheduler.running() + scheduler.waiting();
        log.info("draining: {} request sequence(s) running or queued, up to {} ms to finish", open, timeout.toMillis());
        try {
            boolean done = scheduler.drain(timeout.toNanos());
            if (!done) {
                log.warn("drain time over: cancelling {} sequence(s)", scheduler.running() + scheduler.waiting());
            }
            return done;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    @Override
    public void close() {
        if (!closed.compareAndSet(false, true)) {
            return;
        }
        health.enterTerminalState();
        healthCheck.shutdownNow();
        server.shutdown();
        scheduler.close(); // running streams end with finish_reason CANCELLED
        try {
            if (!server.awaitTermination(5, TimeUnit.SECONDS)) {
                server.shutdownNow();
            }
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            server.shutdownNow();
        }
    }
}
