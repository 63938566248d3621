package dev.epic.cli;

import dev.epic.coordinator.openai.OpenAiServer;
import dev.epic.model.quant.WeightFormat;
import dev.epic.transport.ProcessMeters;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** {@code epic local}: ZooKeeper, expert workers and a coordinator on this machine. */
@Command(name = "local", mixinStandardHelpOptions = true,
        description = {"Run a whole cluster on this machine: embedded ZooKeeper, N expert-worker processes and the",
            "coordinator (and M attention-worker processes with --attention-workers). Prints one JSON line",
            "{\"target\", \"zk\", \"workers\": [{\"pid\", \"experts\"}], \"attention_workers\": [{\"pid\"}], \"http\"} once every",
            "expert is served, then serves until killed (the workers are stopped with it)."})
public final class LocalCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "checkpoint directory")
    Path model;

    @Option(names = "--expert-workers", defaultValue = "2", paramLabel = "N", description = "worker processes (default ${DEFAULT-VALUE})")
    int workers;

    @Option(names = "--replication", defaultValue = "1", paramLabel = "R", description = "workers per expert (default ${DEFAULT-VALUE})")
    int replication;

    @Option(names = "--port", defaultValue = "50051", description = "coordinator gRPC port (0 = any free port; default ${DEFAULT-VALUE})")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "ADDR", description = "address to bind (default ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--skip-warmup", description = "serve at once, without the warm-up that has the JIT compile the "
            + "kernels first: the coordinator's forward passes over a synthetic batch, and each worker's runs of its "
            + "kernels before it registers (SGLang's --skip-server-warmup)")
    boolean skipWarmup;

    @Option(names = "--worker-logs", paramLabel = "DIR", description = "write worker logs here (default: this process's stderr)")
    Path workerLogs;

    @Option(names = "--weights", defaultValue = "auto", paramLabel = "auto|bf16|q8|q4",
            description = "linear weight format of the coordinator and the workers (default ${DEFAULT-VALUE})")
    String weights;

    @Option(names = "--attention-workers", defaultValue = "0", paramLabel = "M",
            description = "attention-worker processes holding the sequences' attention and KV caches (data-parallel "
                    + "attention); 0 = attention in the coordinator (default ${DEFAULT-VALUE})")
    int attentionWorkers;

    @Option(names = "--redundant-slots", defaultValue = "0", paramLabel = "N",
            description = "experts per MoE layer each worker may host beyond its own, placed by the coordinator "
                    + "from the load (expert-parallel load balancing; default ${DEFAULT-VALUE}: off)")
    int redundantSlots;

    @Option(names = "--rebalance-seconds", defaultValue = "" + CoordinatorCommand.DEFAULT_REBALANCE_SECONDS,
            paramLabel = "S", description = "how often the expert placement is replanned when workers have "
                    + "redundant slots (0 = never; default ${DEFAULT-VALUE})")
    long rebalanceSeconds;

    @Option(names = "--expert-device", defaultValue = "cpu", paramLabel = "cpu|cuda",
            description = "where expert workers compute: cpu, or cuda (worker i on GPU i mod the GPUs here; weights as "
                    + "the checkpoint stores them; default ${DEFAULT-VALUE})")
    String expertDevice;

    @Option(names = "--worker-threads", defaultValue = "0", paramLabel = "N",
            description = "kernel threads per expert worker (default 0 = this machine's cores / workers, at least 1)")
    int workerThreads;

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
        Flags.requireNonNegative("--rebalance-seconds", rebalanceSeconds); // as epic coordinator
        scheduler.requireLocalCachesForDisk(attentionWorkers > 0);
        // Taken ports are one line now, not a bind failure after ZooKeeper and the workers have started.
        Flags.requirePort("--port", port);
        openai.check();
        // The flags first (the options check them), then the ports.
        LocalCluster.Options options = new LocalCluster.Options(workers, replication, attentionWorkers,
                workerThreads, WeightFormat.parse(weights), host, port, scheduler.options(), workerLogs, null,
                redundantSlots, Duration.ofSeconds(rebalanceSeconds), expertDevice,
                attentionWorkers > 0 && scheduler.kvCacheMb != null ? scheduler.kvCacheMb : 0, scheduler.kvCache.dtype(),
                !skipWarmup, served -> {
                    served.transformer().twoBatchOverlap(scheduler.twoBatchOverlap);
                    return chatTemplate.apply(served);
                });
        dev.epic.transport.Ports.checkFree(host, port);
        dev.epic.transport.Ports.checkFree(host, openai.port);
        ProcessMeters m = metrics.open(host, openai.port != 0);
        LocalCluster cluster;
        try {
            cluster = LocalCluster.start(model, options.withRegistry(m.registry()));
        } catch (Exception | Error e) {
            m.close();
            throw e;
        }
        OpenAiServer http;
        try {
            http = openai.open(host, cluster.target(), m);
        } catch (Exception | Error e) {
            cluster.close();
            m.close();
            throw e;
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            cluster.close(); // first: its streams end with finish_reason CANCELLED, which HTTP clients still get
            if (http != null) {
                http.close();
            }
            m.close();
            stopped.countDown();
        }, "local-cluster-shutdown"));
        PrintWriter out = spec.commandLine().getOut();
        out.println(cluster.describe(http == null ? null : "http://" + dev.epic.transport.Ports.hostPort(host, http.port()) + "/v1"));
        out.flush();
        cluster.coordinator().awaitTermination();
        stopped.await();
        return 0;
    }
}
