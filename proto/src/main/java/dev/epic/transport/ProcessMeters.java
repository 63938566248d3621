package dev.epic.transport;

import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.binder.jvm.JvmGcMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmMemoryMetrics;
import io.micrometer.core.instrument.binder.jvm.JvmThreadMetrics;
import io.micrometer.core.instrument.binder.system.ProcessorMetrics;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;

/**
 * One process's meters, whatever its role (coordinator, expert or attention worker): a Prometheus
 * registry served at {@code GET /metrics} when a port is given, an in-memory one otherwise, with the
 * JVM's memory, GC, thread and CPU meters bound once.
 */
public final class ProcessMeters implements AutoCloseable {
    private final MeterRegistry registry;
    private final JvmGcMetrics gc;
    private final MetricsEndpoint endpoint;

    private ProcessMeters(MeterRegistry registry, JvmGcMetrics gc, MetricsEndpoint endpoint) {
        this.registry = registry;
        this.gc = gc;
        this.endpoint = endpoint;
    }

    /**
     * Meters served on {@code host:port}; port 0 keeps them in memory only, a negative port serves
     * them on any free port.
     */
    public static ProcessMeters open(String host, int port) throws IOException {
        return open(host, port, false);
    }

    /**
     * As {@link #open(String, int)}; with {@code scrapeable} the meters are kept for Prometheus even
     * without a port of their own ({@link #scrape()}: another server answers /metrics with them).
     */
    public static ProcessMeters open(String host, int port, boolean scrapeable) throws IOException {
        MeterRegistry registry = port != 0 || scrapeable ? new PrometheusMeterRegistry(PrometheusConfig.DEFAULT)
                : new SimpleMeterRegistry();
        JvmGcMetrics gc = new JvmGcMetrics();
        try {
            new JvmMemoryMetrics().bindTo(registry);
            gc.bindTo(registry);
            new JvmThreadMetrics().bindTo(registry);
            new ProcessorMetrics().bindTo(registry);
            MetricsEndpoint endpoint = registry instanceof PrometheusMeterRegistry prometheus && port != 0
                    ? MetricsEndpoint.start(prometheus, host, Math.max(0, port)) : null;
            return new ProcessMeters(registry, gc, endpoint);
        } catch (IOException | RuntimeException e) {
            gc.close();
            registry.close();
            throw e;
        }
    }

    public MeterRegistry registry() {
        return registry;
    }

    /** The meters in Prometheus' text format, or null when they are kept in memory only. */
    public String scrape() {
        return registry instanceof PrometheusMeterRegistry prometheus ? prometheus.scrape() : null;
    }

    /** The port /metrics is served on, or 0 when the meters stay in memory. */
    public int port() {
        return endpoint != null ? endpoint.port() : 0;
    }

    @Override
    public void close() {
        if (endpoint != null) {
            endpoint.close();
        }
        gc.close();
        registry.close();
    }
}
