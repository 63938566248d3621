package dev.epic.cli;

import dev.epic.coordinator.openai.OpenAiServer;
import dev.epic.transport.ProcessMeters;
import java.io.IOException;
import picocli.CommandLine.Option;

/** {@code --http-port}: the OpenAI-compatible HTTP API in front of the coordinator's gRPC API. */
final class OpenAiFlags {
    @Option(names = "--http-port", defaultValue = "0", paramLabel = "PORT",
            description = "serve the OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, "
                    + "/health, /metrics) on http://ADDR:PORT, ADDR as --host (0 = off; default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--served-model-name", paramLabel = "NAME", arity = "1..*",
            description = "the model id HTTP clients send and get back (default: the checkpoint directory's name); "
                    + "with several, as vLLM takes them, a request may name any and answers carry the first")
    java.util.List<String> servedModelName;

    @Option(names = "--api-key", paramLabel = "KEY", defaultValue = "${env:EPIC_API_KEY}",
            description = "require Authorization: Bearer KEY on the HTTP API (all but /health); default: $EPIC_API_KEY, "
                    + "none if unset (set but blank is refused)")
    String apiKey;

    @Option(names = "--allowed-origins", defaultValue = "*", paramLabel = "ORIGINS",
            description = "comma-separated origins browsers may call the HTTP API from (CORS), * for any; "
                    + "default ${DEFAULT-VALUE}, as vLLM's")
    String allowedOrigins;

    /** Refuses what would fail once the coordinator has started: a port out of range, a blank model name. */
    void check() {
        Flags.requirePort("--http-port", port);
        if (servedModelName != null && servedModelName.stream().anyMatch(String::isBlank)) {
            throw new IllegalArgumentException("--served-model-name must not be blank");
        }
    }

    /** --allowed-origins as a list; blank entries dropped (an empty list: no CORS headers). */
    static java.util.List<String> origins(String flag) {
        return java.util.Arrays.stream(flag.split(",")).map(String::strip).filter(o -> !o.isEmpty()).toList();
    }

    /**
     * The HTTP server over the coordinator at {@code grpcTarget}, answering /metrics with {@code meters}'
     * Prometheus text, or null when off.
     */
    OpenAiServer open(String host, String grpcTarget, ProcessMeters meters) throws IOException {
        check();
        return port == 0 ? null : OpenAiServer.start(host, port, grpcTarget,
                servedModelName == null ? java.util.List.of() : servedModelName, apiKey,
                origins(allowedOrigins), meters.scrape() != null ? meters::scrape : null);
    }
}
