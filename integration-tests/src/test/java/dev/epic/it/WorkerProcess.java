package dev.epic.it;

import java.io.File;
import java.io.IOException;
import java.nio.file.DirectoryStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** A real {@code epic expert-worker} JVM started from the packaged CLI (cli/target). */
final class WorkerProcess implements AutoCloseable {
    private static final Path ROOT = Path.of(System.getProperty("epic.root", ".."));
    private final Process process;
    final String id;
    final Path log;

    private WorkerProcess(Process process, String id, Path log) {
        this.process = process;
        this.id = id;
        this.log = log;
    }

    static String classpath() {
        Path target = ROOT.resolve("cli/target");
        try (DirectoryStream<Path> jars = Files.newDirectoryStream(target, "epic-cli-*.jar")) {
            for (Path jar : jars) {
                if (!jar.getFileName().toString().contains("-tests")) {
                    return jar + File.pathSeparator + target.resolve("lib") + File.separator + "*";
                }
            }
        } catch (IOException e) {
            throw new IllegalStateException("cannot list " + target, e);
        }
        throw new IllegalStateException("no epic-cli jar in " + target + " (package the cli module first)");
    }

    static WorkerProcess start(Path model, String zk, String cluster, String id, String experts) throws IOException {
        Path logs = ROOT.resolve("integration-tests/target/it-logs");
        Files.createDirectories(logs);
        Path log = logs.resolve(cluster + "-" + id + ".log");
        List<String> cmd = new ArrayList<>(List.of(
                Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED",
                "-XX:+UseSerialGC", "-Xss4m", "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper=warn",
                "-cp", classpath(), "dev.epic.cli.Main", "expert-worker",
                "--model", model.toString(), "--experts", experts, "--zk", zk, "--port", "0",
                "--cluster", cluster, "--id", id, "--zk-session-timeout-ms", "4000", "--drain-ms", "2000"));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        return new WorkerProcess(p, id, log);
    }

    long pid() {
        return process.pid();
    }

    boolean isAlive() {
        return process.isAlive();
    }

    /** SIGKILL: no deregistration, sockets reset; the znode lingers until the ZK session expires. */
    void kill9() throws InterruptedException {
        process.destroyForcibly();
        process.waitFor(10, TimeUnit.SECONDS);
    }

    /** SIGTERM: graceful drain; returns the exit code. */
    int terminate() throws InterruptedException {
        process.destroy();
        if (!process.waitFor(15, TimeUnit.SECONDS)) {
            process.destroyForcibly();
            throw new AssertionError("worker " + id + " did not exit within 15 s of SIGTERM; see " + log);
        }
        return process.exitValue();
    }

    String logText() {
        try {
            return Files.readString(log);
        } catch (IOException e) {
            return "(no log: " + e + ")";
        }
    }

    @Override
    public void close() throws InterruptedException {
        if (process.isAlive()) {
            process.destroyForcibly();
            process.waitFor(10, TimeUnit.SECONDS);
        }
    }
}
