package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.RemoteExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.ExpertWorker;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.Test;

/** epic generate / logits --target / local's expert placement, against an in-process coordinator on tiny-v3. */
class ServingCommandsTest {
    private static final Path TINY = LogitsCommandTest.testdata("tiny-v3");

    @Test
    void logitsThroughACoordinatorPrintExactlyWhatTheLocalEngineDoes() throws Exception {
        String ids = "5,17,4,99,1000";
        LogitsCommandTest.Run local = LogitsCommandTest.run(new LogitsCommand(), "--model", TINY.toString(), "--ids", ids,
                "--steps", "3");
        assertEquals(0, local.code(), local.err());
        try (CoordinatorServer server = CoordinatorServer.start(ServedModel.open(TINY, null, 0), ExpertBackend.local(),
                SchedulerOptions.defaults(), "127.0.0.1", 0)) {
            LogitsCommandTest.Run remote = LogitsCommandTest.run(new LogitsCommand(), "--target", server.target(), "--ids",
                    ids, "--steps", "3");
            assertEquals(0, remote.code(), remote.err());
            assertEquals(local.out(), remote.out());
            LogitsCommandTest.Run bad = LogitsCommandTest.run(new LogitsCommand(), "--target", server.target(), "--ids",
                    "5,4096");
            assertEquals(LogitsCommand.BAD_INPUT, bad.code());
            assertTrue(bad.err().contains("INVALID_ARGUMENT") && bad.err().contains("4096"), bad.err());
        }
        LogitsCommandTest.Run both = LogitsCommandTest.run(new LogitsCommand(), "--model", TINY.toString(), "--target",
                "127.0.0.1:1", "--ids", ids);
        assertEquals(LogitsCommand.BAD_INPUT, both.code());
        assertTrue(both.err().contains("exactly one of --model"), both.err());
    }

    /** epic status: serving with local experts; not serving, naming the uncovered experts, with half of them on a worker. */
    @Test
    void statusShowsHealthWorkersAndCoverage() throws Exception {
        try (CoordinatorServer local = CoordinatorServer.start(ServedModel.open(TINY, null, 0), ExpertBackend.local(),
                SchedulerOptions.defaults(), "127.0.0.1", 0)) {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
            LogitsCommandTest.Run r;
            do { // the first health check runs just after start
                r = LogitsCommandTest.run(new StatusCommand(), "--target", local.target());
                if (r.code() != 0) {
                    Thread.sleep(50);
                }
            } while (r.code() != 0 && System.nanoTime() < until);
            assertEquals(0, r.code(), r.out() + r.err());
            assertTrue(r.out().contains("health     SERVING") && r.out().contains("in the coordinator's process"), r.out());
            assertTrue(r.out().contains("prefix     0.0 MiB kept; 0 of 0 prompt tokens found cached"), r.out()); // on by default
        }
        try (TestingServer zk = new TestingServer(true); Checkpoint c = Checkpoint.open(TINY)) {
            ModelConfig cfg = c.config();
            CheckpointFingerprint fp = CheckpointFingerprint.of(TINY);
            int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
            try (ExpertWorker half = ExpertWorker.start(CheckpointShard.load(c, ExpertRanges.parse("0-127", 256)), fp,
                    moeLayers, new ExpertWorker.Settings("127.0.0.1", 0, zk.getConnectString(), "t", "w0", 64, 10_000, 200, 0));
                 // The other half in another weight format than the coordinator's: refused, and shown so.
                 ExpertWorker other = ExpertWorker.start(CheckpointShard.load(c, ExpertRanges.parse("128-255", 256)), fp,
                         moeLayers, new ExpertWorker.Settings("127.0.0.1", 0, zk.getConnectString(), "t", "wq", 64, 10_000,
                                 200, 0, 0, "q8"));
                 RemoteExpertBackend backend = RemoteExpertBackend.connect(zk.getConnectString(), "t", fp, cfg,
                         RemoteExperts.Options.defaults().withWeights("auto"))) {
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (!backend.missingExperts().equals("128-255")) {
                    assertTrue(System.nanoTime() < until, "worker never registered");
                    Thread.sleep(20);
                }
                try (CoordinatorServer remote = CoordinatorServer.start(ServedModel.open(TINY, backend.experts(), 0),
                        backend, SchedulerOptions.defaults(), "127.0.0.1", 0)) {
                    until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                    LogitsCommandTest.Run r;
                    do { // the health check runs once a second
                        r = LogitsCommandTest.run(new StatusCommand(), "--target", remote.target(), "--json");
                    } while ((r.code() == 0 || r.out().contains("UNKNOWN")) && System.nanoTime() < until);
                    assertEquals(StatusCommand.NOT_SERVING, r.code(), r.out() + r.err());
                    JsonNode report = new ObjectMapper().readTree(r.out());
                    assertEquals("NOT_SERVING", report.get("health").asText());
                    assertEquals("128-255", report.get("coverage").get("missing").asText());
                    assertEquals(0, report.get("coverage").get("min_replicas").asInt());
                    assertEquals(1, report.get("expert_workers").size());
                    assertEquals("w0", report.get("expert_workers").get(0).get("id").asText());
                    assertEquals("0-127", report.get("expert_workers").get(0).get("experts").asText());
                    assertFalse(report.get("expert_workers").get(0).get("down").asBoolean());
                    JsonNode refused = report.get("refused_workers");
                    assertEquals(1, refused.size(), refused.toString());
                    assertEquals("wq", refused.get(0).get("id").asText());
                    assertTrue(refused.get(0).get("reason").asText().contains("q8"), refused.toString());
                    LogitsCommandTest.Run text = LogitsCommandTest.run(new StatusCommand(), "--target", remote.target());
                    assertTrue(text.out().contains("NO LIVE WORKER for 128-255"), text.out());
                    assertTrue(text.out().contains("REFUSED expert worker wq at 127.0.0.1:"), text.out());
                }
            }
        }
        LogitsCommandTest.Run gone = LogitsCommandTest.run(new StatusCommand(), "--target", "127.0.0.1:1");
        assertEquals(1, gone.code());
        assertTrue(gone.err().contains("UNAVAILABLE"), gone.err());
        assertEquals(1, gone.err().strip().lines().count(), "one line, no stack trace: " + gone.err());
        assertTrue(gone.err().contains("Connection refused"), gone.err());
        // A gRPC server that is not a coordinator (a worker's port, say) is not "a coordinator not serving".
        io.grpc.Server other = io.grpc.netty.NettyServerBuilder.forAddress(new java.net.InetSocketAddress("127.0.0.1", 0))
                .build().start();
        try {
            LogitsCommandTest.Run wrong = LogitsCommandTest.run(new StatusCommand(), "--target", "127.0.0.1:" + other.getPort());
            assertEquals(1, wrong.code(), wrong.err());
            assertTrue(wrong.err().contains("not an EPIC coordinator"), wrong.err());
        } finally {
            other.shutdownNow();
        }
    }

    @Test
    void generateWithAModelStreamsAndSummarises() {
        // "a b c d e" encodes to ids below tiny-v3's 2048-entry vocabulary.
        LogitsCommandTest.Run r = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "a b c d e", "--max-tokens", "5", "--seed", "3", "--ignore-eos");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("[finish: length; prompt 5 tokens, completion 5 tokens"), r.err());
        LogitsCommandTest.Run again = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "a b c d e", "--max-tokens", "5", "--seed", "3", "--ignore-eos");
        assertEquals(r.out(), again.out());
    }

    /** Speculative decoding from the command line: greedy, the same answer with drafts as without; bad values refused. */
    @Test
    void generateSpeculatesWithTheSameGreedyAnswer() {
        LogitsCommandTest.Run plain = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "a b c a b c a b c a b", "--max-tokens", "24", "--temperature", "0", "--ignore-eos");
        LogitsCommandTest.Run spec = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "a b c a b c a b c a b", "--max-tokens", "24", "--temperature", "0", "--ignore-eos",
                "--num-speculative-tokens", "3", "--prompt-lookup-min", "1");
        assertEquals(0, spec.code(), spec.err());
        assertEquals(plain.out(), spec.out());
        LogitsCommandTest.Run bad = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt", "x",
                "--num-speculative-tokens", "2", "--prompt-lookup-min", "3", "--prompt-lookup-max", "2");
        assertEquals(LogitsCommand.BAD_INPUT, bad.code());
        assertTrue(bad.err().contains("--prompt-lookup-max must be >= --prompt-lookup-min (3), got 2"), bad.err());
    }

    /** Constrained answers from the command line: a choice, a pattern, a grammar, and a logit bias that bans a choice. */
    @Test
    void generateHoldsTheAnswerToAChoiceOrAPattern() {
        for (int seed = 0; seed < 3; seed++) {
            LogitsCommandTest.Run r = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                    "a b c", "--seed", String.valueOf(seed), "--temperature", "1", "--choice", "a b", "--choice", "c d e");
            assertEquals(0, r.code(), r.err());
            assertTrue(List.of("a b", "c d e").contains(r.out().strip()), r.out());
            LogitsCommandTest.Run re = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                    "a b c", "--seed", String.valueOf(seed), "--temperature", "1", "--regex", "[a-e]( [a-e]){2}");
            assertEquals(0, re.code(), re.err());
            assertTrue(re.out().strip().matches("[a-e]( [a-e]){2}"), re.out());
            LogitsCommandTest.Run gbnf = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                    "a b c", "--seed", String.valueOf(seed), "--temperature", "1", "--grammar",
                    "root ::= word (\" \" word){1,3}\nword ::= \"a\" | \"b\" [0-9]");
            assertEquals(0, gbnf.code(), gbnf.err());
            assertTrue(gbnf.out().strip().matches("(?:a|b[0-9])(?: (?:a|b[0-9])){1,3}"), gbnf.out());
        }
        LogitsCommandTest.Run both = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt", "x",
                "--json", "--regex", "a");
        assertEquals(LogitsCommand.BAD_INPUT, both.code());
    }

    /**
     * --chat-template renders a --chat prompt with the given template: here only the message's text, so the
     * prompt is the text's tokens ("a b c": 3), where the model's template adds BOS and the role tags (which
     * tiny-v3's small vocabulary refuses).
     */
    @Test
    void generateRendersAChatWithTheTemplateGiven(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path template = tmp.resolve("plain.jinja");
        java.nio.file.Files.writeString(template, "{% for m in messages %}{{ m['content'] }}{% endfor %}");
        LogitsCommandTest.Run r = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--chat",
                "--prompt", "a b c", "--max-tokens", "1", "--chat-template", template.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("prompt 3 tokens"), r.err());
        LogitsCommandTest.Run model = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--chat",
                "--prompt", "a b c", "--max-tokens", "1");
        assertEquals(1, model.code(), model.err()); // tiny-v3's 2,048 ids hold no role tag
        assertTrue(model.err().contains("<｜User｜>"), model.err());
        LogitsCommandTest.Run text = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(),
                "--prompt", "a b c", "--chat-template", template.toString());
        assertEquals(LogitsCommand.BAD_INPUT, text.code(), text.err());
        assertTrue(text.err().contains("--chat-template renders a --chat prompt"), text.err());
    }

    @Test
    void generateReportsServerSideValidation() throws Exception {
        // Sampling values are checked before the model loads, by the server's own rules.
        LogitsCommandTest.Run r = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "x", "--temperature", "-1");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("sampling.temperature"), r.err());
        // What only the served model can check comes back from the server.
        LogitsCommandTest.Run bias = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "x", "--logit-bias", "999999=1");
        assertEquals(1, bias.code(), bias.err());
        assertTrue(bias.err().contains("INVALID_ARGUMENT") && bias.err().contains("logit_bias"), bias.err());
        // A priority goes to the server: an in-process one takes it, and the answer is the same.
        LogitsCommandTest.Run first = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt",
                "a b c d e", "--max-tokens", "4", "--temperature", "0", "--ignore-eos", "--priority", "-3");
        assertEquals(0, first.code(), first.err());
        assertEquals(LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString(), "--prompt", "a b c d e",
                "--max-tokens", "4", "--temperature", "0", "--ignore-eos").out(), first.out());
        try (CoordinatorServer fcfs = CoordinatorServer.start(ServedModel.open(TINY, null, 0), ExpertBackend.local(),
                SchedulerOptions.defaults(), "127.0.0.1", 0)) { // a coordinator serving first come, first served
            LogitsCommandTest.Run refused = LogitsCommandTest.run(new GenerateCommand(), "--target", fcfs.target(),
                    "--prompt", "a b c d e", "--max-tokens", "4", "--priority", "2");
            assertEquals(1, refused.code(), refused.err());
            assertTrue(refused.err().contains("INVALID_ARGUMENT") && refused.err().contains("priority: must be 0"),
                    refused.err());
        }
        LogitsCommandTest.Run none = LogitsCommandTest.run(new GenerateCommand(), "--model", TINY.toString());
        assertEquals(LogitsCommand.BAD_INPUT, none.code());
        assertTrue(none.err().contains("--prompt"), none.err());
    }

    @Test
    void workerCommandsExplainBadInputInOneLine() {
        LogitsCommandTest.Run attention = LogitsCommandTest.run(new AttentionWorkerCommand(), "--model", "/nonexistent/m",
                "--zk", "127.0.0.1:1", "--port", "0");
        assertEquals(2, attention.code());
        assertTrue(attention.err().startsWith("epic attention-worker: ") && attention.err().contains("/nonexistent/m")
                && !attention.err().contains("\tat "), attention.err());
        LogitsCommandTest.Run expert = LogitsCommandTest.run(new ExpertWorkerCommand(), "--model", TINY.toString(),
                "--zk", "127.0.0.1:1", "--experts", "0-300");
        assertEquals(2, expert.code());
        assertTrue(expert.err().startsWith("epic expert-worker: "), expert.err());
    }

    /**
     * A coordinator that takes the connection and never answers (a hung process) holds a client
     * command only for its --timeout-s, which then ends it with DEADLINE_EXCEEDED.
     */
    @Test
    void clientCommandsGiveUpOnAHungCoordinatorAfterTheirTimeout() throws Exception {
        try (ServerSocket hung = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"))) {
            String target = "127.0.0.1:" + hung.getLocalPort();
            LogitsCommandTest.Run logits = LogitsCommandTest.run(new LogitsCommand(), "--target", target, "--ids", "5,17",
                    "--timeout-s", "1");
            assertEquals(1, logits.code(), logits.err());
            assertTrue(logits.err().contains("DEADLINE_EXCEEDED"), logits.err());
            LogitsCommandTest.Run generate = LogitsCommandTest.run(new GenerateCommand(), "--target", target, "--prompt",
                    "x", "--timeout-s", "1");
            assertEquals(1, generate.code(), generate.err());
            assertTrue(generate.err().contains("DEADLINE_EXCEEDED"), generate.err());
        }
        assertEquals(LogitsCommand.BAD_INPUT, LogitsCommandTest.run(new LogitsCommand(), "--target", "127.0.0.1:1",
                "--ids", "5", "--timeout-s", "0").code());
    }

    /** The model does not exist: a taken port is reported first, before any weights would load. */
    @Test
    void aTakenPortIsOneLineBeforeTheWeightsLoad() throws Exception {
        try (ServerSocket taken = new ServerSocket(0, 50, InetAddress.getByName("127.0.0.1"))) {
            String port = Integer.toString(taken.getLocalPort());
            String inUse = "port " + port + " on 127.0.0.1 is in use";
            LogitsCommandTest.Run expert = LogitsCommandTest.run(new ExpertWorkerCommand(), "--model", "/nonexistent/m",
                    "--zk", "127.0.0.1:1", "--experts", "0-3", "--port", port);
            assertEquals(2, expert.code());
            assertEquals("epic expert-worker: " + inUse, expert.err().strip());
            LogitsCommandTest.Run attention = LogitsCommandTest.run(new AttentionWorkerCommand(), "--model",
                    "/nonexistent/m", "--zk", "127.0.0.1:1", "--port", "0", "--metrics-port", port);
            assertEquals(2, attention.code());
            assertEquals("epic attention-worker: " + inUse, attention.err().strip());
        }
        LogitsCommandTest.Run kv = LogitsCommandTest.run(new AttentionWorkerCommand(), "--model", "/nonexistent/m",
                "--zk", "127.0.0.1:1", "--port", "0", "--kv-cache-mb", "0");
        assertEquals(2, kv.code());
        assertEquals("epic attention-worker: --kv-cache-mb must be >= 1, got 0", kv.err().strip());
    }

    /** Worker JVMs that epic local starts exit when out of memory instead of staying registered half-broken. */
    @Test
    void localWorkersExitOnOutOfMemory() {
        List<String> cmd = LocalCluster.workerCommand("attention-worker", List.of("--port", "0"), 1);
        assertEquals(1, cmd.stream().filter(LocalCluster.WORKER_OOM_FLAG::equals).count(), cmd.toString());
        assertTrue(cmd.indexOf(LocalCluster.WORKER_OOM_FLAG) < cmd.indexOf(Main.class.getName()), "a JVM flag");
    }

    @Test
    void placementPutsEachExpertOnReplicationWorkers() {
        for (int[] shape : new int[][] {{64, 2, 1}, {64, 3, 2}, {256, 5, 3}, {10, 4, 4}}) {
            String[] p = LocalCluster.placement(shape[0], shape[1], shape[2]);
            assertEquals(shape[1], p.length);
            int[] count = new int[shape[0]];
            for (String spec : p) {
                for (int e : ExpertRanges.parse(spec, shape[0])) {
                    count[e]++;
                }
            }
            for (int e = 0; e < shape[0]; e++) {
                assertEquals(shape[2], count[e], "expert " + e + " in " + String.join(" | ", p));
            }
        }
        assertEquals("0-31", LocalCluster.placement(64, 2, 1)[0]);
        assertThrows(IllegalArgumentException.class, () -> LocalCluster.placement(64, 2, 3));
        assertThrows(IllegalArgumentException.class, () -> LocalCluster.placement(64, 0, 1));
        assertThrows(IllegalArgumentException.class, () -> LocalCluster.placement(4, 8, 1));
    }
}
