package dev.epic.cli;

import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.quant.WeightFormat;
import dev.epic.model.synth.Presets;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.Messages;
import dev.epic.proto.SamplingParams;
import io.grpc.ManagedChannel;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code epic demo}: the whole system on this machine with nothing to download. A small random-weight
 * model with DeepSeek-V3's real vocabulary and tokenizer (synthesised once), an embedded ZooKeeper,
 * two expert-worker processes, an attention-worker process and a coordinator; one chat answer
 * streamed through the public API.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = {"Synthesise (once) a small random-weight DeepSeek-V3-architecture model with the real tokenizer,",
            "start a local cluster (ZooKeeper + 2 expert workers + 1 attention worker + coordinator), stream a chat",
            "answer, shut down."})
public final class DemoCommand implements Callable<Integer> {
    static final String PRESET = "demo-v3";
    static final String SYSTEM = "You are a helpful assistant.";
    static final String QUESTION = "In two sentences, why do mixture-of-experts models spread experts across machines?";

    @Spec
    CommandSpec spec;

    @Option(names = "--dir", defaultValue = "models/demo-v3", paramLabel = "DIR",
            description = "where the demo model lives (synthesised if missing; default ${DEFAULT-VALUE})")
    Path dir;

    @Option(names = "--max-tokens", defaultValue = "48", paramLabel = "N", description = "answer length (default ${DEFAULT-VALUE})")
    int maxTokens;

    @Option(names = "--expert-workers", defaultValue = "2", paramLabel = "N", description = "worker processes (default ${DEFAULT-VALUE})")
    int workers;

    @Option(names = "--attention-workers", defaultValue = "1", paramLabel = "M",
            description = "attention-worker processes holding the KV caches; 0 = attention in the coordinator (default ${DEFAULT-VALUE})")
    int attentionWorkers;

    @Override
    public Integer call() throws Exception {
        PrintWriter out = spec.commandLine().getOut();
        PrintWriter err = spec.commandLine().getErr();
        long t0 = System.nanoTime();
        if (!Files.isRegularFile(dir.resolve("config.json")) || !Files.isRegularFile(dir.resolve("tokenizer.json"))) {
            out.printf("== synthesising the %s model into %s (one time; random weights, real DeepSeek-V3 tokenizer)%n",
                    PRESET, dir);
            out.flush();
            if (synthesise(err) != 0) {
                return 1;
            }
        } else {
            out.printf("== reusing the %s model in %s%n", PRESET, dir);
        }
        var c = Presets.byName(PRESET);
        out.printf("   hidden %d, %d layers, %d routed experts (top-%d) + 1 shared, vocabulary %,d%n", c.hiddenSize(),
                c.numHiddenLayers(), c.nRoutedExperts(), c.numExpertsPerTok(), c.vocabSize());
        out.printf("== starting a local cluster: embedded ZooKeeper, %d expert-worker and %d attention-worker processes, "
                + "coordinator%n", workers, attentionWorkers);
        out.flush();
        Path logs = Files.createTempDirectory("epic-demo-logs");
        try (LocalCluster cluster = LocalCluster.start(dir, new LocalCluster.Options(workers, 1, attentionWorkers, 0,
                // One request: the warm-up would cost it more than it saves (31 s against 18 s end to end).
                WeightFormat.AUTO, "127.0.0.1", 0, SchedulerOptions.defaults(), logs, new SimpleMeterRegistry())
                .withWarmup(false))) {
            for (LocalCluster.Worker w : cluster.workers()) {
                out.printf("   expert worker pid %d hosts experts %s%n", w.process().pid(), w.experts());
            }
            for (Process a : cluster.attentionWorkers()) {
                out.printf("   attention worker pid %d holds the MLA attention and KV cache of the sequences placed on it%n",
                        a.pid());
            }
            out.printf("   coordinator (GenerationService) on %s, ZooKeeper on %s; ready after %.1f s%n", cluster.target(),
                    cluster.zkConnect(), (System.nanoTime() - t0) / 1e9);
            out.println();
            out.println("NOTE: the weights are RANDOM, so the answer below is random text. The demo shows the real");
            out.println("      pipeline (chat template, tokenizer, MLA attention and experts over gRPC on other processes,");
            out.println("      sampling, streaming), not a trained model.");
            out.println();
            out.println("[system] " + SYSTEM);
            out.println("[user]   " + QUESTION);
            out.println("[assistant]");
            out.flush();
            GenerateRequest request = GenerateRequest.newBuilder()
                    .setChat(Messages.newBuilder()
                            .addMessages(ChatMessage.newBuilder().setRole("system").setContent(SYSTEM))
                            .addMessages(ChatMessage.newBuilder().setRole("user").setContent(QUESTION)))
                    .setSampling(SamplingParams.newBuilder().setTemperature(0.6f).setTopP(0.95f).setSeed(42)
                            .setMaxTokens(maxTokens))
                    .setRequestId("demo")
                    .build();
            ManagedChannel channel = Channels.open(cluster.target());
            int code;
            try {
                code = GenerateCommand.stream(channel, request, out, out, System.console() != null, 300);
            } finally {
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
            out.println("== shutting down the cluster");
            out.flush();
            if (code != 0) {
                return code;
            }
        } finally {
            deleteTree(logs);
        }
        out.printf("== demo finished in %.1f s%n", (System.nanoTime() - t0) / 1e9);
        out.flush();
        return 0;
    }

    /** epic synth into a temporary folder, then move it in place, so a half-written model is never reused. */
    private int synthesise(PrintWriter err) throws Exception {
        Path tmp = dir.resolveSibling(dir.getFileName() + ".partial");
        deleteTree(tmp);
        Files.createDirectories(tmp.getParent() == null ? Path.of(".") : tmp.getParent());
        int code = new CommandLine(new SynthCommand()).setErr(err)
                .execute("--config", PRESET, "--out", tmp.toString(), "--seed", "2025");
        if (code != 0) {
            err.println("epic demo: synthesising the model failed");
            return code;
        }
        deleteTree(dir);
        Files.move(tmp, dir);
        return 0;
    }

    private static void deleteTree(Path p) throws java.io.IOException {
        if (!Files.exists(p)) {
            return;
        }
        try (Stream<Path> files = Files.walk(p)) {
            for (Path f : files.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(f);
            }
        }
    }
}
