package dev.epic.cli;

import dev.epic.transport.ProcessMeters;
import java.io.IOException;
import picocli.CommandLine.Option;

/** {@code --metrics-port}: the coordinator's meters for Prometheus, or kept in memory only. */
final class MetricsFlags {
    @Option(names = "--metrics-port", defaultValue = "0", paramLabel = "PORT",
            description = "serve Prometheus metrics on http://ADDR:PORT/metrics, ADDR as --host (0 = off; default ${DEFAULT-VALUE})")
    int port;

    /** The meters; {@code scrapeable} keeps them for Prometheus without --metrics-port (the HTTP API serves them). */
    ProcessMeters open(String host, boolean scrapeable) throws IOException {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--metrics-port must be in [0, 65535], got " + port);
        }
        try {
            return ProcessMeters.open(host, port, scrapeable);
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("cannot serve metrics on " + host + ":" + port + ": " + e.getMessage(), e);
        }
    }
}
