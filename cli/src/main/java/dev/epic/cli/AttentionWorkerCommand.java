package dev.epic.cli;

import dev.epic.attention.AttentionWarmup;
import dev.epic.attention.AttentionWorker;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.bench.ProcessStats;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code epic attention-worker}: MLA attention and KV caches for a share of the sequences. */
@Command(name = "attention-worker", mixinStandardHelpOptions = true,
        description = {"Run the MLA attention of every layer, with the latent KV caches, for the sequences coordinators",
            "place here (data-parallel attention). Registers in ZooKeeper under /epic/<cluster>/attention/<id> once",
            "ready; SIGTERM drains gracefully (sequences cached here end with it)."})
public final class AttentionWorkerCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(AttentionWorkerCommand.class);
    /** The warm-up's rounds (see AttentionWarmup); its steps fill the coordinators' default --prefill-budget. */
    private static final int WARMUP_ROUNDS = 8;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face checkpoint directory")
    Path model;

    @Mixin
    WorkerFlags flags;

    @Option(names = "--port", defaultValue = "50071", description = "gRPC port (0 = any free port; default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--skip-warmup", description = "announce at once, without first running the attention kernels on "
            + "synthetic sequences so the JIT compiles them (seconds; a cold worker's first long prefill can miss the "
            + "coordinator's deadline)")
    boolean skipWarmup;

    @Option(names = "--max-sequences", defaultValue = "256", paramLabel = "N",
            description = "most sequences (KV caches) held at once; coordinators place no more here (default ${DEFAULT-VALUE})")
    int maxSequences;

    @Option(names = "--kv-cache-mb", paramLabel = "MB",
            description = "KV cache the sequences here may hold together; new sequences beyond it are refused as "
                    + "when the worker is full (placed elsewhere), and a sequence that would outgrow it ends with "
                    + "RESOURCE_EXHAUSTED (default: half the JVM's maximum heap)")
    Long kvCacheMb;

    @Option(names = "--prefix-cache-mb", paramLabel = "MB",
            description = "prompt prefix blocks each coordinator may keep here, so that a request starting like an "
                    + "earlier one is placed here and prefills only what is new; 0 turns it off (default: a quarter "
                    + "of the JVM's maximum heap)")
    Long prefixCacheMb;

    @Mixin
    KvCacheFlags kvCache;

    @Override
    public Integer call() throws Exception {
        return flags.serve(this::serve);
    }

    private int serve() throws Exception {
        long kvCacheBytes = kvCacheMb != null ? Flags.mebibytes("--kv-cache-mb", kvCacheMb, 1)
                : AttentionWorker.defaultKvCacheBytes();
        long prefixCacheBytes = prefixCacheMb != null ? Flags.mebibytes("--prefix-cache-mb", prefixCacheMb, 0)
                : AttentionWorker.defaultPrefixCacheBytes();
        KvCacheDtype kvCacheDtype = kvCache.dtype();
        flags.checkPortsFree(port); // before the weights: loading them may take minutes
        Checkpoint checkpoint = Checkpoint.open(model);
        WeightFormat format = WeightFormat.parse(flags.weights);
        flags.checkZooKeeper();
        long t0 = System.nanoTime();
        AttentionLayers layers = AttentionLayers.load(checkpoint.config(), ConvertedWeights.of(checkpoint, format, model));
        log.info("opened the attention of {} layers in {} ms: {} MiB of weights, process RSS {} MiB", layers.count(),
                (System.nanoTime() - t0) / 1_000_000, String.format("%.1f", layers.storageBytes() / 1048576.0),
                String.format("%.0f", ProcessStats.residentMb()));
        if (!skipWarmup) { // before announcing: cold kernels can miss the coordinator's attention deadline
            long w0 = System.nanoTime();
            int calls = AttentionWarmup.run(layers, kvCacheDtype, SchedulerOptions.DEFAULT_PREFILL_BUDGET,
                    WARMUP_ROUNDS);
            log.info("compiled the attention kernels before serving: {} MLA calls in {} ms", calls,
                    (System.nanoTime() - w0) / 1_000_000);
        }
        AttentionWorker worker = WorkerFlags.startDrained(() -> AttentionWorker.start(layers,
                CheckpointFingerprint.of(model), new AttentionWorker.Settings(flags.host, port, flags.zk, flags.cluster,
                        flags.id, maxSequences, flags.sessionTimeoutMs, flags.drainMs, flags.metricsPort, kvCacheBytes)
                        .withWeights(format.effective(checkpoint).id()).withPrefixCacheBytes(prefixCacheBytes)
                        .withKvCacheDtype(kvCacheDtype)),
                checkpoint);
        flags.watchParent();
        worker.awaitTermination();
        return 0;
    }
}
