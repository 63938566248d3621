package dev.epic.cli;

import dev.epic.transport.MetricsEndpoint;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import io.micrometer.prometheusmetrics.PrometheusConfig;
import io.micrometer.prometheusmetrics.PrometheusMeterRegistry;
import java.io.IOException;
import picocli.CommandLine.Option;

/** {@code --metrics-port}: the coordinator's meters for Prometheus, or kept in memory only. */
final class MetricsFlags {
    @Option(names = "--metrics-port", defaultValue = "0", paramLabel = "PORT",
            description = "serve Prometheus metrics on http://ADDR:PORT/metrics, ADDR as --host (0 = off; default ${DEFAULT-VALUE})")
    int port;

    /** The registry meters go to, and the endpoint serving it (null when off). */
    record Metrics(MeterRegistry registry, MetricsEndpoint endpoint) implements AutoCloseable {
        @Override
        public void close() {
            if (endpoint != null) {
                endpoint.close();
            }
            registry.close();
        }
    }

    Metrics open(String host) throws IOException {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--metrics-port must be in [0, 65535], got " + port);
        }
        if (port == 0) {
            return new Metrics(new SimpleMeterRegistry(), null);
        }
        PrometheusMeterRegistry registry = new PrometheusMeterRegistry(PrometheusConfig.DEFAULT);
        try {
            return new Metrics(registry, MetricsEndpoint.start(registry, host, port));
        } catch (IOException | RuntimeException e) {
            registry.close();
            throw new IllegalArgumentException("cannot serve metrics on " + host + ":" + port + ": " + e.getMessage(), e);
        }
    }
}
