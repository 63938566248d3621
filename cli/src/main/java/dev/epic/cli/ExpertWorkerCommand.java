package dev.epic.cli;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.bench.ProcessStats;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.quant.WeightFormat;
import dev.epic.transport.ExpertRanges;
import dev.epic.kernels.cuda.Cuda;
import dev.epic.kernels.cuda.CudaDevice;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.CudaShard;
import dev.epic.worker.ExpertShard;
import dev.epic.worker.ExpertWorker;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.util.function.Supplier;
import java.util.stream.IntStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** {@code epic expert-worker}: hosts a shard of the routed experts and serves them over gRPC. */
@Command(name = "expert-worker", mixinStandardHelpOptions = true,
        description = {"Host a subset of the routed experts (every MoE layer) and serve them to coordinators over gRPC.",
            "Registers in ZooKeeper under /epic/<cluster>/workers/<id> once ready; SIGTERM drains gracefully."})
public final class ExpertWorkerCommand implements Callable<Integer> {
    private static final Logger log = LoggerFactory.getLogger(ExpertWorkerCommand.class);

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "Hugging Face checkpoint directory")
    Path model;

    @Mixin
    WorkerFlags flags;

    @Option(names = "--experts", required = true, paramLabel = "RANGES", description = "expert ids to host, e.g. 0-63,200-207")
    String experts;

    @Option(names = "--port", defaultValue = "50061", description = "gRPC port (0 = any free port; default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--capacity", defaultValue = "256",
            description = "token rows per message this worker is sized for; it takes messages of up to "
                    + "max(N, 16384) rows (default ${DEFAULT-VALUE})")
    int capacity;

    @Option(names = "--redundant-slots", defaultValue = "0", paramLabel = "N",
            description = "experts per MoE layer it may host beyond its own, as the coordinators place them from "
                    + "the load (expert-parallel load balancing; default ${DEFAULT-VALUE}: off)")
    int redundantSlots;

    @Option(names = "--skip-warmup", description = "announce at once, without first running the kernels on the first "
            + "rows of an expert's weights so the JIT compiles them (seconds; a cold worker's first long prefill can "
            + "miss the coordinator's deadline)")
    boolean skipWarmup;

    @Option(names = "--device", defaultValue = "cpu", paramLabel = "cpu|cuda[:N]",
            description = "where the experts compute: cpu (Vector API kernels), or GPU N (default 0) through CUDA, "
                    + "weights copied to it as the checkpoint stores them (bf16, fp8, f32; default ${DEFAULT-VALUE})")
    String device;

    @Option(names = "--activations", defaultValue = "fp32", paramLabel = "fp32|bf16",
            description = "with --device cuda: fp32 (the verifier's arithmetic), or bf16 for experts with at least "
                    + CudaShard.BF16_MIN_ROWS + " rows in a message (tensor cores, fp32 sums; within 1e-2 of a row's "
                    + "norm; default ${DEFAULT-VALUE})")
    String activations;

    @Option(names = "--mtp-layer", description = "also host its experts of the checkpoint's multi-token-prediction "
            + "layer, for coordinators drafting with it (--speculative-method mtp); without workers that cover it, a "
            + "coordinator runs that layer's experts itself")
    boolean mtpLayer;

    @Override
    public Integer call() throws Exception {
        return flags.serve(this::serve);
    }

    /** Loads the shard on the device asked for, once called: the flags are checked now, before anything loads. */
    private Supplier<ExpertShard> loader(Checkpoint checkpoint, int[] ids) {
        WeightFormat format = WeightFormat.parse(flags.weights);
        CudaShard.Activations act = CudaShard.Activations.parse(activations);
        String noMtp = mtpLayer ? CheckpointShard.mtpLayerMissing(checkpoint.config()) : null;
        if (noMtp != null) {
            throw new IllegalArgumentException("--mtp-layer: " + noMtp);
        }
        if (device.equals("cpu")) {
            if (act != CudaShard.Activations.FP32) {
                throw new IllegalArgumentException("--activations bf16 needs --device cuda (the CPU kernels are fp32)");
            }
            return () -> CheckpointShard.load(checkpoint, ids, format, mtpLayer);
        }
        if (mtpLayer) {
            throw new IllegalArgumentException("--mtp-layer needs --device cpu: GPU workers host the decoder's MoE layers "
                    + "only, for now (coordinators then run the MTP layer's experts themselves)");
        }
        int ordinal = GpuFlag.ordinal("--device", device, "cpu, cuda or cuda:N");
        if (format != WeightFormat.AUTO) {
            throw new IllegalArgumentException("--device " + device + " serves the weights as the checkpoint stores them: "
                    + "--weights " + flags.weights + " (a converted copy) runs on the CPU only");
        }
        if (redundantSlots > 0) {
            throw new IllegalArgumentException("--redundant-slots needs --device cpu: GPU workers host their own "
                    + "experts only, for now");
        }
        if (ordinal >= Cuda.deviceCount()) {
            throw new IllegalArgumentException("--device " + device + ": " + (Cuda.available()
                    ? "this machine has " + Cuda.deviceCount() + " GPU(s)" : Cuda.unavailableReason()));
        }
        return () -> CudaShard.load(checkpoint, ids, CudaDevice.open(ordinal)).activations(act).onContextLost(() -> {
            // Every later message would fail: exit (the registration goes with the process) to be restarted.
            log.error("exiting: the GPU cannot serve any more messages");
            Runtime.getRuntime().halt(70);
        });
    }

    private int serve() throws Exception {
        flags.checkPortsFree(port); // before the weights: loading them may take minutes
        Checkpoint checkpoint = Checkpoint.open(model);
        ModelConfig cfg = checkpoint.config();
        if (cfg.nRoutedExperts() == null) {
            throw new IllegalArgumentException(model + " is a dense model: it has no routed experts to serve");
        }
        int[] ids = ExpertRanges.parse(experts, cfg.nRoutedExperts());
        CheckpointFingerprint fp = CheckpointFingerprint.of(model);
        Supplier<ExpertShard> loader = loader(checkpoint, ids);
        flags.checkZooKeeper();
        long t0 = System.nanoTime();
        ExpertShard shard = loader.get();
        int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
        log.info("loaded {} of {} experts x {} MoE layers{} on {} in {} ms: {} MiB of expert weights ({}% of all routed "
                        + "experts), process RSS {} MiB", ids.length, cfg.nRoutedExperts(), moeLayers,
                shard.hostsMtpLayer() ? " and the MTP layer" : "", device,
                (System.nanoTime() - t0) / 1_000_000,
                String.format("%.1f", shard.residentBytes() / 1048576.0), String.format("%.1f", 100.0 * ids.length / cfg.nRoutedExperts()),
                String.format("%.0f", ProcessStats.residentMb()));
        long w0 = System.nanoTime();
        int products = skipWarmup ? 0 : shard.warmUp(); // before announcing: cold kernels can miss the deadline
        if (products > 0) {
            log.info("compiled the expert kernels before serving: {} products on an expert's first rows in {} ms", products,
                    (System.nanoTime() - w0) / 1_000_000);
        }
        ExpertWorker worker = WorkerFlags.startDrained(() -> ExpertWorker.start(shard, fp, moeLayers,
                new ExpertWorker.Settings(flags.host, port, flags.zk, flags.cluster, flags.id, capacity,
                        flags.sessionTimeoutMs, flags.drainMs, flags.metricsPort, redundantSlots,
                        WeightFormat.parse(flags.weights).effective(checkpoint).id())), checkpoint);
        flags.watchParent();
        worker.awaitTermination();
        return 0;
    }
}
