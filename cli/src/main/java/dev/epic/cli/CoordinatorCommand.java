package dev.epic.cli;

import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.RemoteExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.attention.RemoteAttention;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.coordinator.openai.OpenAiServer;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.quant.WeightFormat;
import dev.epic.transport.ProcessMeters;
import dev.epic.proto.HiddenEncoding;
import dev.epic.transport.ZkLayout;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code epic coordinator}: the public API, attention and dense layers here, routed experts on workers. */
@Command(name = "coordinator", mixinStandardHelpOptions = true,
        description = {"Serve the GenerationService API (gRPC) for a model whose routed experts run on expert workers",
            "found through ZooKeeper. Requests get UNAVAILABLE while some experts have no live worker."})
public final class CoordinatorCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(CoordinatorCommand.class);

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "checkpoint directory")
    Path model;

    @Option(names = "--zk", required = true, paramLabel = "HOST:PORT", description = "ZooKeeper connect string")
    String zk;

    @Option(names = "--cluster", defaultValue = ZkLayout.DEFAULT_CLUSTER, description = "cluster name in ZooKeeper (default ${DEFAULT-VALUE})")
    String cluster;

    @Option(names = "--port", defaultValue = "50051", description = "gRPC port (0 = any free port; default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--host", defaultValue = "0.0.0.0", paramLabel = "ADDR", description = "address to bind (default ${DEFAULT-VALUE})")
    String host;

    @Option(names = {"--max-context", "--max-model-len"}, defaultValue = "0", paramLabel = "TOKENS",
            description = "prompt + completion limit (--max-model-len: vLLM's name; default: the model's "
                    + "max_position_embeddings)")
    int maxContext;

    @Option(names = "--weights", defaultValue = "auto", paramLabel = "auto|bf16|q8|q4",
            description = "format of this process's linear weights (attention, dense MLPs, shared experts, lm_head): auto, bf16, q8 or q4; give the workers the same for results equal to the single-process engine (default auto)")
    String weights;

    @Option(names = "--wire", defaultValue = "fp32", paramLabel = "fp32|bf16|fp8",
            description = "hidden-state encoding to expert workers (fp32 is exact; default ${DEFAULT-VALUE})")
    String wire;

    @Option(names = "--drain-ms", defaultValue = "30000", paramLabel = "MS",
            description = "on SIGTERM: health turns NOT_SERVING, new requests get UNAVAILABLE, and running ones "
                    + "get this long to finish before they are cancelled (default ${DEFAULT-VALUE})")
    long drainMs;

    @Option(names = "--expert-deadline-ms", defaultValue = "5000", paramLabel = "MS",
            description = "a worker slower than this for one layer is presumed dead (default ${DEFAULT-VALUE})")
    long expertDeadlineMs;

    static final int DEFAULT_REBALANCE_SECONDS = 60;

    @Option(names = "--rebalance-seconds", defaultValue = "" + DEFAULT_REBALANCE_SECONDS, paramLabel = "S",
            description = "how often the expert placement is replanned from the load, when expert workers have "
                    + "redundant slots (0 = never; default ${DEFAULT-VALUE})")
    long rebalanceSeconds;

    @Option(names = "--skip-warmup", description = "ready at once, without the forward warm-up: passes over a synthetic "
            + "batch, once every expert is served, that have the JIT compile the kernels before the first request; "
            + "readiness waits for it (SGLang's --skip-server-warmup)")
    boolean skipWarmup;

    @Option(names = "--remote-attention",
            description = "run attention and the KV caches on the attention workers registered in ZooKeeper "
                    + "(data-parallel attention; each sequence is placed on one) instead of in this process")
    boolean remoteAttention;

    @Option(names = "--attention-deadline-ms", defaultValue = "30000", paramLabel = "MS",
            description = "an attention worker slower than this for one layer is presumed dead (default ${DEFAULT-VALUE})")
    long attentionDeadlineMs;

    @Mixin
    SchedulerFlags scheduler;

    @Mixin
    MetricsFlags metrics;

    @Mixin
    OpenAiFlags openai;

    @Mixin
    ChatTemplateFlags chatTemplate;

    @Override
    public Integer call() throws Exception {
        WeightFormat format = WeightFormat.parse(weights);
        KvCacheDtype kvCacheDtype = scheduler.kvCache.dtype();
        ModelConfig config = ModelConfig.load(model);
        HiddenEncoding encoding = switch (wire.toLowerCase(java.util.Locale.ROOT)) {
            case "fp32" -> HiddenEncoding.FP32;
            case "bf16" -> HiddenEncoding.BF16;
            case "fp8" -> HiddenEncoding.FP8_E4M3;
            default -> throw new IllegalArgumentException("--wire must be fp32, bf16 or fp8, got '" + wire + "'");
        };
        Flags.requireNonNegative("--rebalance-seconds", rebalanceSeconds);
        Flags.requireNonNegative("--max-context", maxContext);
        SpeculationFlags.requireMtpLayer(scheduler.options().speculation(), config);
        scheduler.requireLocalCachesForDisk(remoteAttention);
        // A zero or negative gRPC deadline fails every call at once, so the cluster would never answer.
        Flags.requireNonNegative("--drain-ms", drainMs);
        Flags.requirePositive("--expert-deadline-ms", expertDeadlineMs);
        Flags.requirePositive("--attention-deadline-ms", attentionDeadlineMs);
        String weights = format.effective(model).id(); // workers must announce the same
        RemoteExperts.Options options = RemoteExperts.Options.defaults().withEncoding(encoding)
                .withRebalance(Duration.ofSeconds(rebalanceSeconds))
                .withDeadline(Duration.ofMillis(expertDeadlineMs)).withWeights(weights);
        // Taken ports are one line now, not a bind failure after the model has loaded.
        Flags.requirePort("--port", port);
        openai.check();
        dev.epic.transport.Ports.checkFree(host, port);
        dev.epic.transport.Ports.checkFree(host, openai.port);
        ProcessMeters m = metrics.open(host, openai.port != 0);
        RemoteExpertBackend backend = null;
        RemoteAttention attention = null;
        CoordinatorServer server;
        OpenAiServer http;
        try {
            CheckpointFingerprint fingerprint = CheckpointFingerprint.of(model); // reads every file's header
            backend = RemoteExpertBackend.connect(zk, cluster, fingerprint, config, options, m.registry());
            attention = remoteAttention
                    ? RemoteAttention.create(backend.experts().zk(), cluster, fingerprint, config,
                            RemoteAttention.Options.defaults().withDeadline(Duration.ofMillis(attentionDeadlineMs))
                                    .withWeights(weights).withKvCacheDtype(kvCacheDtype)
                                    .withMtpLayer(scheduler.options().speculation().mtp()),
                            m.registry())
                    : null;
            ServedModel served = chatTemplate.apply(ServedModel.open(model, backend.experts(), attention, maxContext, format));
            served.transformer().kvCacheDtype(kvCacheDtype).twoBatchOverlap(scheduler.twoBatchOverlap);
            server = CoordinatorServer.start(served, backend, scheduler.options(), host, port, m.registry());
            if (!skipWarmup) {
                server.warmUp();
            }
            try {
                http = openai.open(host, server.target(), m);
            } catch (Exception | Error e) {
                server.close();
                throw e;
            }
        } catch (Exception | Error e) {
            if (attention != null) {
                attention.close();
            }
            if (backend != null) {
                backend.close();
            }
            m.close();
            throw e;
        }
        RemoteExpertBackend experts = backend;
        RemoteAttention remote = attention;
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            if (http != null) {
                http.shutDown(); // new HTTP requests: 503 "shutting down"
            }
            server.drain(Duration.ofMillis(drainMs)); // running requests finish; HTTP keeps serving their streams
            server.close(); // first: what is left ends with finish_reason CANCELLED, which HTTP clients still get
            if (http != null) {
                http.close();
            }
            if (remote != null) {
                remote.close();
            }
            experts.close();
            m.close();
        }, "coordinator-shutdown"));
        if (remote != null && !remote.awaitWorkers(1, Duration.ofSeconds(1))) {
            log.warn("no attention worker registered yet: requests get UNAVAILABLE until one joins");
        }
        if (!experts.awaitCoverage(Duration.ofSeconds(1))) {
            log.warn("experts {} have no live worker yet: requests get UNAVAILABLE until workers hosting them join",
                    experts.missingExperts());
        }
        server.awaitTermination();
        return 0;
    }
}
