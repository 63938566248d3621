package dev.epic.cli;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.bench.ProcessStats;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.config.ConfigException;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.quant.WeightFormat;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.ZkLayout;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.ExpertWorker;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.stream.IntStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code epic expert-worker}: hosts a shard of the routed experts and serves them over gRPC. */
@Command(name = "expert-worker", mixinStandardHelpOptions = true,
        description = {"Host a subset of the routed experts (every MoE layer) and serve them to coordinators over gRPC.",
            "Registers in ZooKeeper under /epic/<cluster>/workers/<id> once ready; SIGTERM drains gracefully."})
public final class ExpertWorkerCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(ExpertWorkerCommand.class);

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face checkpoint directory")
    Path model;

    @Option(names = "--experts", required = true, paramLabel = "RANGES", description = "expert ids to host, e.g. 0-63,200-207")
    String experts;

    @Option(names = "--zk", required = true, paramLabel = "HOST:PORT", description = "ZooKeeper connect string")
    String zk;

    @Option(names = "--port", defaultValue = "50061", description = "gRPC port (0 = any free port; default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "ADDR",
            description = "address to bind and announce; must be reachable by coordinators (default ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--capacity", defaultValue = "256", description = "token rows per message this worker is sized for (advisory; default ${DEFAULT-VALUE})")
    int capacity;

    @Option(names = "--cluster", defaultValue = ZkLayout.DEFAULT_CLUSTER, description = "cluster name in ZooKeeper (default ${DEFAULT-VALUE})")
    String cluster;

    @Option(names = "--id", description = "worker id (default w-<host>-<port>)")
    String id;

    @Option(names = "--zk-session-timeout-ms", defaultValue = "10000",
            description = "ZooKeeper session timeout: how long a crashed worker stays registered (default ${DEFAULT-VALUE})")
    int sessionTimeoutMs;

    @Option(names = "--drain-ms", defaultValue = "5000", description = "max time to finish in-flight work on SIGTERM (default ${DEFAULT-VALUE})")
    long drainMs;

    @Option(names = "--weights", defaultValue = "auto", paramLabel = "auto|bf16|q8|q4",
            description = "format of the hosted experts' weights: as stored (auto), bf16, q8 or q4; a copy made by epic quantize is used (default auto)")
    String weights;

    @Option(names = "--exit-with-parent", paramLabel = "PID", hidden = true,
            description = "drain and exit when process PID ends (epic local uses it so workers never outlive it)")
    Long parentPid;

    @Override
    public Integer call() throws Exception {
        try {
            return serve();
        } catch (IllegalArgumentException | IllegalStateException | CheckpointException | ConfigException e) {
            // bad flags, files or an unreachable ZooKeeper: one clear line, no stack trace
            System.err.println("epic expert-worker: " + e.getMessage());
            return 2;
        }
    }

    private int serve() throws Exception {
        Checkpoint checkpoint = Checkpoint.open(model);
        ModelConfig cfg = checkpoint.config();
        if (cfg.nRoutedExperts() == null) {
            throw new IllegalArgumentException(model + " is a dense model: it has no routed experts to serve");
        }
        int[] ids = ExpertRanges.parse(experts, cfg.nRoutedExperts());
        CheckpointFingerprint fp = CheckpointFingerprint.of(model);
        long t0 = System.nanoTime();
        CheckpointShard shard = CheckpointShard.load(checkpoint, ids, WeightFormat.parse(weights));
        int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
        log.info("loaded {} of {} experts x {} MoE layers in {} ms: {} MiB of expert weights ({}% of all routed experts), "
                        + "process RSS {} MiB", ids.length, cfg.nRoutedExperts(), moeLayers, (System.nanoTime() - t0) / 1_000_000,
                String.format("%.1f", shard.residentBytes() / 1048576.0), String.format("%.1f", 100.0 * ids.length / cfg.nRoutedExperts()),
                String.format("%.0f", ProcessStats.residentMb()));
        ExpertWorker worker = ExpertWorker.start(shard, fp, moeLayers, new ExpertWorker.Settings(host, port, zk, cluster,
                id, capacity, sessionTimeoutMs, drainMs));
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            worker.close();
            checkpoint.close();
        }, "drain"));
        if (parentPid != null) {
            // A parent killed with -9 runs no shutdown hook: watching its pid is what stops orphans.
            ProcessHandle.of(parentPid).ifPresentOrElse(
                    parent -> parent.onExit().thenRun(() -> {
                        log.warn("parent process {} ended: draining and exiting", parentPid);
                        System.exit(0);
                    }),
                    () -> System.exit(0));
        }
        worker.awaitTermination();
        return 0;
    }
}
