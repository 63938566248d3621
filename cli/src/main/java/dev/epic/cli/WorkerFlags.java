package dev.epic.cli;

import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.config.ConfigException;
import dev.epic.transport.Ports;
import dev.epic.transport.WorkerRegistration;
import dev.epic.transport.ZkLayout;
import java.io.PrintWriter;
import java.util.concurrent.Callable;
import java.util.concurrent.atomic.AtomicReference;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/** Flags every worker command (expert and attention) shares: ZooKeeper, identity, drain, weights. */
final class WorkerFlags {
    private static final Logger log = LoggerFactory.getLogger(WorkerFlags.class);

    @Spec(Spec.Target.MIXEE)
    CommandSpec command;

    @Option(names = "--zk", required = true, paramLabel = "HOST:PORT", description = "ZooKeeper connect string")
    String zk;

    @Option(names = "--host", defaultValue = "127.0.0.1", paramLabel = "ADDR",
            description = "address to bind and announce; must be reachable by coordinators (default ${DEFAULT-VALUE})")
    String host;

    @Option(names = "--cluster", defaultValue = ZkLayout.DEFAULT_CLUSTER, description = "cluster name in ZooKeeper (default ${DEFAULT-VALUE})")
    String cluster;

    @Option(names = "--id", description = "worker id (default <w|a>-<host>-<port>)")
    String id;

    @Option(names = "--zk-session-timeout-ms", defaultValue = "10000",
            description = "ZooKeeper session timeout: how long a crashed worker stays registered (default ${DEFAULT-VALUE})")
    int sessionTimeoutMs;

    @Option(names = "--drain-ms", defaultValue = "5000", description = "max time to finish in-flight work on SIGTERM (default ${DEFAULT-VALUE})")
    long drainMs;

    @Option(names = "--weights", defaultValue = "auto", paramLabel = "auto|bf16|q8|q4",
            description = "format of the weights served here: as stored (auto), bf16, q8 or q4; a copy made by epic quantize is used; give the coordinator the same (default auto)")
    String weights;

    @Option(names = "--metrics-port", defaultValue = "0", paramLabel = "PORT",
            description = "serve Prometheus metrics on http://ADDR:PORT/metrics, ADDR as --host (0 = off; default ${DEFAULT-VALUE})")
    int metricsPort;

    @Option(names = "--exit-with-parent", paramLabel = "PID", hidden = true,
            description = "drain and exit when process PID ends (epic local uses it so workers never outlive it)")
    Long parentPid;

    /**
     * Runs a worker command's {@code serve}. Bad flags, files or an unreachable ZooKeeper give one
     * clear line on stderr and exit code 2, without a stack trace.
     */
    int serve(Callable<Integer> serve) throws Exception {
        try {
            if (metricsPort < 0 || metricsPort > 65535) {
                throw new IllegalArgumentException("--metrics-port must be in [0, 65535], got " + metricsPort);
            }
            Flags.requireNonNegative("--drain-ms", drainMs);
            Flags.requirePositive("--zk-session-timeout-ms", sessionTimeoutMs);
            checkHost(host);
            return serve.call();
        } catch (IllegalArgumentException | IllegalStateException | CheckpointException | ConfigException e) {
            PrintWriter err = command.commandLine().getErr();
            err.println("epic " + command.name() + ": " + e.getMessage());
            err.flush();
            return 2;
        }
    }

    /**
     * --host is bound and announced: it must resolve, and be one address (the wildcard binds every
     * interface but tells coordinators nothing they can reach).
     */
    static void checkHost(String host) {
        java.net.InetAddress a;
        try {
            a = java.net.InetAddress.getByName(host);
        } catch (java.net.UnknownHostException e) {
            throw new IllegalArgumentException("--host " + host + " does not resolve to an address");
        }
        if (a.isAnyLocalAddress()) {
            throw new IllegalArgumentException("--host " + host + " is the wildcard address, which coordinators cannot "
                    + "reach: give this machine's address (in Kubernetes the pod IP)");
        }
    }

    /**
     * A taken gRPC or metrics port is one line ("port N on HOST is in use"), reported before the
     * weights load rather than after.
     */
    void checkPortsFree(int grpcPort) throws java.io.IOException {
        Ports.checkFree(host, grpcPort);
        Ports.checkFree(host, metricsPort);
    }

    /**
     * ZooKeeper reachable within the session timeout, checked once the model's headers are read and
     * before its weights load (which may take an hour): a wrong {@code --zk} is one line now, not after
     * the load. Exiting here costs a restart nothing, so a worker started before its ZooKeeper simply
     * starts again.
     */
    void checkZooKeeper() throws InterruptedException {
        WorkerRegistration.connect(zk, sessionTimeoutMs, sessionTimeoutMs).close();
    }

    /**
     * Starts a worker with its SIGTERM drain already in place. The drain hook waits for a start in
     * progress, so a signal that lands just after the worker registered still deregisters it;
     * {@code alsoClose} (the checkpoint) closes after the worker.
     */
    static <W extends AutoCloseable> W startDrained(Callable<W> start, AutoCloseable alsoClose) throws Exception {
        Object lock = new Object();
        AtomicReference<W> started = new AtomicReference<>();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            synchronized (lock) {
                try {
                    W w = started.get();
                    if (w != null) {
                        w.close();
                    }
                    alsoClose.close();
                } catch (Exception e) {
                    log.warn("drain failed: {}", e.toString());
                }
            }
        }, "drain"));
        synchronized (lock) {
            W w = start.call();
            started.set(w);
            return w;
        }
    }

    /** With --exit-with-parent: exit (running the drain hook) when that process ends. */
    void watchParent() {
        if (parentPid == null) {
            return;
        }
        // A parent killed with -9 runs no shutdown hook: watching its pid is what stops orphans.
        ProcessHandle.of(parentPid).ifPresentOrElse(
                parent -> parent.onExit().thenRun(() -> {
                    log.warn("parent process {} ended: draining and exiting", parentPid);
                    System.exit(0);
                }),
                () -> System.exit(0));
    }
}
