package dev.epic.it;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/** A real {@code epic local} process (ZooKeeper + worker JVMs + coordinator) and its JSON description. */
final class EpicLocal implements AutoCloseable {
    static final Path ROOT = Path.of(System.getProperty("epic.root", ".."));

    record Worker(long pid, String experts) {}

    final Process process;
    final String target;
    final String zk;
    final String cluster;
    final List<Worker> workers;
    /** Pids of the attention workers (empty without --attention-workers). */
    final List<Long> attentionWorkers;
    final Path log;
    final ManagedChannel channel;

    private EpicLocal(Process process, JsonNode json, Path log) {
        this.process = process;
        this.target = json.get("target").asText();
        this.zk = json.get("zk").asText();
        this.cluster = json.get("cluster").asText();
        List<Worker> ws = new ArrayList<>();
        for (JsonNode w : json.get("workers")) {
            ws.add(new Worker(w.get("pid").asLong(), w.get("experts").asText()));
        }
        this.workers = List.copyOf(ws);
        List<Long> as = new ArrayList<>();
        for (JsonNode a : json.path("attention_workers")) {
            as.add(a.get("pid").asLong());
        }
        this.attentionWorkers = List.copyOf(as);
        this.log = log;
        this.channel = NettyChannelBuilder.forTarget(target).usePlaintext().maxInboundMessageSize(Integer.MAX_VALUE).build();
    }

    static List<String> java(String... args) {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "-Xss4m",
                "-XX:+UseSerialGC", "-Dorg.slf4j.simpleLogger.log.org.apache.zookeeper=warn",
                "-cp", WorkerProcess.classpath(), "dev.epic.cli.Main"));
        cmd.addAll(List.of(args));
        return cmd;
    }

    static Path logFile(String name) throws IOException {
        Path logs = ROOT.resolve("integration-tests/target/it-logs");
        Files.createDirectories(logs);
        return logs.resolve(name + ".log");
    }

    /** Starts {@code epic local ARGS} and waits (bounded) for its JSON line. */
    static EpicLocal start(String name, String... args) throws Exception {
        List<String> cmd = new ArrayList<>(List.of("local", "--port", "0"));
        cmd.addAll(List.of(args));
        Path log = logFile(name);
        Process p = new ProcessBuilder(java(cmd.toArray(String[]::new))).redirectError(log.toFile()).start();
        CompletableFuture<String> line = CompletableFuture.supplyAsync(() -> {
            try {
                return new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8)).readLine();
            } catch (IOException e) {
                throw new IllegalStateException(e);
            }
        });
        String json;
        try {
            json = line.get(180, TimeUnit.SECONDS);
        } catch (Exception e) {
            p.destroyForcibly();
            throw new AssertionError("epic local did not print its JSON line: " + e + "\n" + Files.readString(log), e);
        }
        if (json == null) {
            p.waitFor(10, TimeUnit.SECONDS);
            throw new AssertionError("epic local exited (" + p.exitValue() + ") without its JSON line:\n"
                    + Files.readString(log));
        }
        return new EpicLocal(p, new ObjectMapper().readTree(json), log);
    }

    /** A synthetic demo-v3 model (real vocabulary and tokenizer), written once per build tree. */
    static Path demoModel() throws Exception {
        Path dir = ROOT.resolve("integration-tests/target/it-models/demo-v3");
        if (Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            return dir;
        }
        Process p = new ProcessBuilder(java("synth", "--config", "demo-v3", "--out", dir.toString(), "--seed", "7", "--force"))
                .redirectErrorStream(true).redirectOutput(logFile("synth-demo-v3").toFile()).start();
        if (!p.waitFor(5, TimeUnit.MINUTES) || p.exitValue() != 0) {
            p.destroyForcibly();
            throw new AssertionError("epic synth failed: " + Files.readString(logFile("synth-demo-v3")));
        }
        return dir;
    }

    /** SIGKILL of a process (a worker, or epic local itself). */
    static void kill9(long pid) throws Exception {
        ProcessHandle h = ProcessHandle.of(pid).orElseThrow(() -> new AssertionError("no process " + pid));
        h.destroyForcibly();
        h.onExit().get(10, TimeUnit.SECONDS);
    }

    @Override
    public void close() throws Exception {
        channel.shutdownNow();
        process.destroy(); // SIGTERM: its shutdown hook stops the workers
        if (!process.waitFor(30, TimeUnit.SECONDS)) {
            process.destroyForcibly();
        }
        for (Worker w : workers) { // never leave a worker behind, even if the hook did not run
            ProcessHandle.of(w.pid()).ifPresent(ProcessHandle::destroyForcibly);
        }
        for (long pid : attentionWorkers) {
            ProcessHandle.of(pid).ifPresent(ProcessHandle::destroyForcibly);
        }
    }
}
