package dev.epic.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.RemoteExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.attention.RemoteAttention;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.quant.WeightFormat;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CheckpointShard;
import io.micrometer.core.instrument.MeterRegistry;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.stream.IntStream;
import org.apache.curator.test.TestingServer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A whole cluster on this machine: an embedded ZooKeeper, N expert-worker processes (separate JVMs
 * running this same classpath) with the experts spread evenly, each on R of them, optionally M
 * attention-worker processes holding the sequences' attention and KV caches, and a coordinator in
 * this process. {@link #close()} stops everything it started.
 */
final class LocalCluster implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(LocalCluster.class);
    static final String CLUSTER = "local";
    /** How long start waits for the coordinator's forward warm-up (seconds on bench-v3) before serving anyway. */
    private static final Duration WARMUP_WAIT = Duration.ofMinutes(5);

    /** A worker process and the experts it hosts. */
    record Worker(Process process, String experts, Path logFile) {}

    private final TestingServer zk;
    private final List<Worker> workers;
    private final List<Process> attentionWorkers;
    private final RemoteExpertBackend backend;
    private final RemoteAttention attention; // null: attention in the coordinator
    private final CoordinatorServer coordinator;

    private LocalCluster(TestingServer zk, List<Worker> workers, List<Process> attentionWorkers,
            RemoteExpertBackend backend, RemoteAttention attention, CoordinatorServer coordinator) {
        this.zk = zk;
        this.workers = workers;
        this.attentionWorkers = attentionWorkers;
        this.backend = backend;
        this.attention = attention;
        this.coordinator = coordinator;
    }

    /** Worker w's device: the CPU, or the GPUs of this machine in turn. */
    static String device(String kind, int worker) {
        if (kind.equals("cpu")) {
            return "cpu";
        }
        int gpus = dev.epic.kernels.cuda.Cuda.deviceCount();
        if (gpus == 0) {
            throw new IllegalArgumentException("--expert-device cuda: " + dev.epic.kernels.cuda.Cuda.unavailableReason());
        }
        return "cuda:" + worker % gpus;
    }

    /** Experts of worker w: contiguous blocks w, w+1, ..., w+R-1 (mod N), so each expert is on R workers. */
    static String[] placement(int experts, int workers, int replication) {
        if (workers < 1) {
            throw new IllegalArgumentException("--expert-workers must be >= 1, got " + workers);
        }
        if (replication < 1 || replication > workers) {
            throw new IllegalArgumentException("--replication must be in [1, --expert-workers=" + workers + "], got "
                    + replication);
        }
        if (workers > experts) {
            throw new IllegalArgumentException(workers + " workers for " + experts + " experts: some would host none");
        }
        String[] out = new String[workers];
        for (int w = 0; w < workers; w++) {
            List<Integer> ids = new ArrayList<>();
            for (int r = 0; r < replication; r++) {
                int block = (w + r) % workers;
                int from = (int) ((long) block * experts / workers);
                int to = (int) ((long) (block + 1) * experts / workers);
                IntStream.range(from, to).forEach(ids::add);
            }
            out[w] = ExpertRanges.format(ids.stream().mapToInt(Integer::intValue).sorted().toArray());
        }
        return out;
    }

    /**
     * What to start.
     *
     * @param workerThreads    kernel threads per worker; 0 = this machine's cores shared out among the
     *                         workers (at least 1), since they all run here next to the coordinator
     * @param format           linear weight format of the coordinator and every worker
     * @param attentionWorkers attention-worker processes; 0 = attention runs in the coordinator
     * @param logDir           where worker logs go (null = inherit this process's stderr)
     * @param registry         where the coordinator's meters go
     * @param redundantSlots   each expert worker's redundant slots per layer (0: no rebalancing)
     * @param rebalance        how often the coordinator replans the expert placement
     * @param expertDevice     where the expert workers compute: "cpu", or "cuda" (worker i on GPU i mod
     *                         the GPUs there are)
     * @param attentionKvCacheMb each attention worker's KV cache budget in MiB (0: the worker's default,
     *                         half its heap)
     * @param kvCacheDtype     how the coordinator's or attention workers' caches store positions
     */
    record Options(int expertWorkers, int replication, int attentionWorkers, int workerThreads, WeightFormat format,
            String host, int port, SchedulerOptions scheduler, Path logDir, MeterRegistry registry, int redundantSlots,
            Duration rebalance, String expertDevice, long attentionKvCacheMb, KvCacheDtype kvCacheDtype, boolean warmup,
            java.util.function.UnaryOperator<ServedModel> serving) {
        /** These options with the coordinator's meters going to {@code r}. */
        Options withRegistry(MeterRegistry r) {
            return new Options(expertWorkers, replication, attentionWorkers, workerThreads, format, host, port, scheduler,
                    logDir, r, redundantSlots, rebalance, expertDevice, attentionKvCacheMb, kvCacheDtype, warmup, serving);
        }

        /** These options with the warm-up on or off. */
        Options withWarmup(boolean on) {
            return new Options(expertWorkers, replication, attentionWorkers, workerThreads, format, host, port, scheduler,
                    logDir, registry, redundantSlots, rebalance, expertDevice, attentionKvCacheMb, kvCacheDtype, on, serving);
        }

        /** Without redundant experts, on the CPU, with fp32 caches, warmed up. */
        Options(int expertWorkers, int replication, int attentionWorkers, int workerThreads, WeightFormat format,
                String host, int port, SchedulerOptions scheduler, Path logDir, MeterRegistry registry) {
            this(expertWorkers, replication, attentionWorkers, workerThreads, format, host, port, scheduler, logDir,
                    registry, 0, Duration.ZERO, "cpu", 0, KvCacheDtype.FP32, true, m -> m);
        }

        Options {
            if (redundantSlots < 0) {
                throw new IllegalArgumentException("--redundant-slots must be >= 0, got " + redundantSlots);
            }
            if (workerThreads < 0) {
                throw new IllegalArgumentException("--worker-threads must be >= 0, got " + workerThreads);
            }
            if (attentionWorkers < 0) {
                throw new IllegalArgumentException("--attention-workers must be >= 0, got " + attentionWorkers);
            }
            if (attentionKvCacheMb < 0) {
                throw new IllegalArgumentException("--kv-cache-mb must be >= 1, got " + attentionKvCacheMb);
            }
            if (!expertDevice.equals("cpu") && !expertDevice.equals("cuda")) {
                throw new IllegalArgumentException("--expert-device must be cpu or cuda, got '" + expertDevice + "'");
            }
            if (expertDevice.equals("cuda") && format != WeightFormat.AUTO) {
                throw new IllegalArgumentException("--expert-device cuda serves the weights as the checkpoint stores them: "
                        + "use --weights auto (converted copies run on the CPU only)");
            }
            if (expertDevice.equals("cuda") && redundantSlots > 0) {
                throw new IllegalArgumentException("--redundant-slots needs --expert-device cpu: GPU workers host their "
                        + "own experts only, for now");
            }
        }
    }

    /** Starts ZooKeeper, the workers and the coordinator, and returns once every expert is covered. */
    static LocalCluster start(Path model, Options o) throws Exception {
        int workerCount = o.expertWorkers();
        int attentionWorkerCount = o.attentionWorkers();
        WeightFormat format = o.format();
        Path logDir = o.logDir();
        int threads = o.workerThreads() > 0 ? o.workerThreads()
                : Math.max(1, Runtime.getRuntime().availableProcessors() / Math.max(1, workerCount + attentionWorkerCount));
        ModelConfig config = ModelConfig.load(model);
        SpeculationFlags.requireMtpLayer(o.scheduler().speculation(), config);
        if (config.nRoutedExperts() == null) {
            throw new IllegalArgumentException(model + " is a dense model: there are no experts to put on workers");
        }
        String[] devices = new String[workerCount];
        for (int w = 0; w < workerCount; w++) {
            devices[w] = device(o.expertDevice(), w); // before anything starts: no GPU is a clear error
        }
        // Drafting with the MTP layer: CPU workers host their experts of it too (GPU workers cannot yet, and
        // the coordinator then runs them itself).
        boolean mtpExperts = o.scheduler().speculation().mtp() && o.expertDevice().equals("cpu")
                && CheckpointShard.mtpLayerMissing(config) == null;
        String[] placement = placement(config.nRoutedExperts(), workerCount, o.replication());
        TestingServer zk = new TestingServer(true);
        List<Worker> workers = new ArrayList<>();
        List<Process> attentionWorkers = new ArrayList<>();
        RemoteExpertBackend backend = null;
        RemoteAttention attention = null;
        try {
            for (int w = 0; w < workerCount; w++) {
                workers.add(spawnWorker(model, placement[w], zk.getConnectString(), "local-" + w, logDir, threads, format,
                        devices[w], o.redundantSlots(), mtpExperts, o.warmup()));
            }
            for (int a = 0; a < attentionWorkerCount; a++) {
                List<String> args = new ArrayList<>(List.of("--model", model.toAbsolutePath().toString(),
                        "--zk", zk.getConnectString(), "--port", "0", "--cluster", CLUSTER, "--id", "local-attention-" + a,
                        "--zk-session-timeout-ms", "4000", "--drain-ms", "500", "--weights", format.id(),
                        "--kv-cache-dtype", o.kvCacheDtype().id()));
                if (o.attentionKvCacheMb() > 0) {
                    args.addAll(List.of("--kv-cache-mb", Long.toString(o.attentionKvCacheMb())));
                }
                if (!o.warmup()) {
                    args.add("--skip-warmup");
                }
                attentionWorkers.add(spawn("attention-worker", args, "local-attention-" + a, logDir, threads).process());
            }
            CheckpointFingerprint fp = CheckpointFingerprint.of(model);
            String weights = format.effective(model).id();
            backend = RemoteExpertBackend.connect(zk.getConnectString(), CLUSTER, fp, config,
                    RemoteExperts.Options.defaults().withRebalance(o.rebalance()).withWeights(weights), o.registry());
            awaitCoverage(backend, workers);
            if (attentionWorkerCount > 0) {
                attention = RemoteAttention.create(backend.experts().zk(), CLUSTER, fp, config,
                        RemoteAttention.Options.defaults().withWeights(weights).withKvCacheDtype(o.kvCacheDtype())
                                .withMtpLayer(o.scheduler().speculation().mtp()),
                        o.registry());
                awaitAttention(attention, attentionWorkers);
            }
            ServedModel served = o.serving().apply(ServedModel.open(model, backend.experts(), attention, 0, format));
            served.transformer().kvCacheDtype(o.kvCacheDtype());
            CoordinatorServer coordinator = CoordinatorServer.start(served, backend, o.scheduler(), o.host(), o.port(),
                    o.registry());
            if (o.warmup() && !coordinator.warmUp().awaitWarmUp(WARMUP_WAIT)) {
                log.warn("the forward warm-up has not ended after {} s: serving anyway", WARMUP_WAIT.toSeconds());
            }
            return new LocalCluster(zk, workers, attentionWorkers, backend, attention, coordinator);
        } catch (Exception | Error e) {
            if (attention != null) {
                attention.close();
            }
            if (backend != null) {
                backend.close();
            }
            workers.forEach(w -> stop(w.process()));
            attentionWorkers.forEach(LocalCluster::stop);
            zk.close();
            throw e;
        }
    }

    private static void awaitAttention(RemoteAttention attention, List<Process> processes) throws Exception {
        Map<Process, String> named = new LinkedHashMap<>();
        processes.forEach(p -> named.put(p, "attention worker (pid " + p.pid() + ")"));
        await(wait -> attention.awaitWorkers(processes.size(), wait), named,
                () -> "attention workers did not all register");
    }

    private static void awaitCoverage(RemoteExpertBackend backend, List<Worker> workers) throws Exception {
        Map<Process, String> named = new LinkedHashMap<>();
        workers.forEach(w -> named.put(w.process(), "expert worker (experts " + w.experts()
                + (w.logFile() == null ? "" : ", log " + w.logFile()) + ")"));
        await(backend::awaitCoverage, named, () -> "expert workers did not cover experts " + backend.missingExperts());
    }

    /** One poll for readiness, waiting at most the given time. */
    @FunctionalInterface
    interface Readiness {
        boolean ready(Duration wait) throws InterruptedException;
    }

    /** Polls until ready; fails as soon as one of the processes exits, or after 3 minutes. */
    static void await(Readiness readiness, Map<Process, String> processes, Supplier<String> notReady)
            throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(3);
        while (!readiness.ready(Duration.ofMillis(200))) {
            for (Map.Entry<Process, String> p : processes.entrySet()) {
                if (!p.getKey().isAlive()) {
                    throw new IllegalStateException(p.getValue() + " exited with code " + p.getKey().exitValue());
                }
            }
            if (System.nanoTime() > deadline) {
                throw new IllegalStateException(notReady.get() + " within 3 minutes");
            }
        }
    }

    /**
     * `epic expert-worker` in a new JVM with this process's java, flags and classpath, and
     * {@code threads} kernel threads: N workers each with a pool as wide as the machine would
     * oversubscribe the cores the coordinator needs (idle pool threads spin before parking).
     */
    static Worker spawnWorker(Path model, String experts, String zkConnect, String id, Path logDir, int threads,
            WeightFormat format, String device, int redundantSlots, boolean mtpLayer, boolean warmup) throws IOException {
        List<String> args = new ArrayList<>(List.of("--model", model.toAbsolutePath().toString(), "--experts", experts,
                "--zk", zkConnect, "--port", "0", "--cluster", CLUSTER, "--id", id, "--zk-session-timeout-ms", "4000",
                "--drain-ms", "500", "--weights", format.id(), "--device", device,
                "--redundant-slots", Integer.toString(redundantSlots)));
        if (mtpLayer) {
            args.add("--mtp-layer");
        }
        if (!warmup) {
            args.add("--skip-warmup");
        }
        Worker w = spawn("expert-worker", args, id, logDir, threads);
        return new Worker(w.process(), experts, w.logFile());
    }

    /** `epic COMMAND ARGS --exit-with-parent PID` in a new JVM with this process's java, flags and classpath. */
    private static Worker spawn(String command, List<String> args, String id, Path logDir, int threads)
            throws IOException {
        ProcessBuilder pb = new ProcessBuilder(workerCommand(command, args, threads))
                .redirectOutput(ProcessBuilder.Redirect.DISCARD);
        Path logFile = null;
        if (logDir != null) {
            Files.createDirectories(logDir);
            logFile = logDir.resolve(id + ".log");
            pb.redirectErrorStream(false).redirectError(logFile.toFile());
        } else {
            pb.redirectError(ProcessBuilder.Redirect.INHERIT);
        }
        Process p = pb.start();
        log.info("started {} {} (pid {})", command, id, p.pid());
        Path logged = logFile;
        // Not restarted here (a supervisor or Kubernetes does that); said at once, since the cluster
        // serves on without it (replicas) or reports its experts missing.
        p.onExit().thenAccept(gone -> {
            if (!STOPPING.contains(gone.pid())) {
                log.warn("{} {} (pid {}) exited with code {}{}", command, id, gone.pid(), gone.exitValue(),
                        logged == null ? "" : "; its log: " + logged);
            }
        });
        return new Worker(p, "", logFile);
    }

    static final String WORKER_OOM_FLAG = "-XX:+ExitOnOutOfMemoryError";

    /** The command line of a worker JVM: this process's java, flags (debuggers left out) and classpath. */
    static List<String> workerCommand(String command, List<String> args, int threads) {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        for (String arg : ManagementFactory.getRuntimeMXBean().getInputArguments()) {
            if (!arg.startsWith("-agentlib") && !arg.startsWith("-javaagent") && !arg.startsWith("-Xrunjdwp")
                    && !arg.startsWith("-Depic.threads=") && !arg.equals(WORKER_OOM_FLAG)) {
                cmd.add(arg);
            }
        }
        cmd.add("-Depic.threads=" + threads);
        // Out of memory, a worker exits (its registration goes with it) instead of staying registered
        // half-broken; the coordinator in this process handles its own per sequence.
        cmd.add(WORKER_OOM_FLAG);
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), Main.class.getName(), command));
        cmd.addAll(args);
        cmd.addAll(List.of("--exit-with-parent", Long.toString(ProcessHandle.current().pid())));
        return cmd;
    }

    String target() {
        return coordinator.target();
    }

    String zkConnect() {
        return zk.getConnectString();
    }

    List<Worker> workers() {
        return workers;
    }

    List<Process> attentionWorkers() {
        return attentionWorkers;
    }

    CoordinatorServer coordinator() {
        return coordinator;
    }

    /** The line `epic local` prints once ready; {@code http} (the OpenAI API's base URL) may be null. */
    String describe(String http) {
        ObjectMapper json = new ObjectMapper();
        ObjectNode o = json.createObjectNode();
        o.put("target", target());
        o.put("zk", zkConnect());
        o.put("cluster", CLUSTER);
        ArrayNode ws = o.putArray("workers");
        for (Worker w : workers) {
            ws.addObject().put("pid", w.process().pid()).put("experts", w.experts());
        }
        ArrayNode as = o.putArray("attention_workers");
        for (Process p : attentionWorkers) {
            as.addObject().put("pid", p.pid());
        }
        if (http != null) {
            o.put("http", http);
        }
        return o.toString();
    }

    /** Pids of the worker processes this JVM is stopping: their exit is expected. */
    private static final Set<Long> STOPPING = ConcurrentHashMap.newKeySet();

    private static void stop(Process p) {
        STOPPING.add(p.pid());
        if (!p.isAlive()) {
            return;
        }
        p.destroy(); // SIGTERM: the worker drains and deregisters
        try {
            if (!p.waitFor(5, TimeUnit.SECONDS)) {
                p.destroyForcibly().waitFor(5, TimeUnit.SECONDS);
            }
        } catch (InterruptedException e) {
            p.destroyForcibly();
            Thread.currentThread().interrupt();
        }
    }

    @Override
    public void close() {
        coordinator.close();
        workers.forEach(w -> STOPPING.add(w.process().pid()));
        attentionWorkers.forEach(p -> STOPPING.add(p.pid()));
        workers.forEach(w -> w.process().destroy());
        attentionWorkers.forEach(Process::destroy);
        workers.forEach(w -> stop(w.process()));
        attentionWorkers.forEach(LocalCluster::stop);
        if (attention != null) {
            attention.close();
        }
        backend.close();
        try {
            zk.close();
        } catch (IOException e) {
            log.warn("closing embedded ZooKeeper: {}", e.toString());
        }
    }
}
