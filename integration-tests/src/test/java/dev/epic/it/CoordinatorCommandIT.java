package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.ModelInfoRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.net.ServerSocket;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code epic coordinator} as its own process, with a separately started ZooKeeper and worker. */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class CoordinatorCommandIT {
    private static final Path MODEL = TestData.model("tiny-v3");

    /** A coordinator process on a free port, its channel and its log. */
    private record Coordinator(Process process, ManagedChannel channel, Path log) implements AutoCloseable {
        static Coordinator start(String zk, String name, String... flags) throws Exception {
            int port;
            try (ServerSocket s = new ServerSocket(0)) {
                port = s.getLocalPort();
            }
            Path log = EpicLocal.logFile(name);
            java.util.List<String> args = new java.util.ArrayList<>(java.util.List.of("coordinator", "--model",
                    MODEL.toString(), "--zk", zk, "--cluster", "cmd", "--port", "" + port, "--host", "127.0.0.1"));
            args.addAll(java.util.List.of(flags));
            Process p = new ProcessBuilder(EpicLocal.java(args.toArray(String[]::new)))
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            return new Coordinator(p, NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
                    .maxInboundMessageSize(64 << 20).build(), log);
        }

        /** Waits until its health is SERVING (every expert has a live worker). */
        void awaitServing() throws Exception {
            var health = HealthGrpc.newBlockingStub(channel);
            HealthCheckResponse.ServingStatus status = null;
            for (int i = 0; i < 900 && status != HealthCheckResponse.ServingStatus.SERVING; i++) {
                assertTrue(process.isAlive(), "coordinator exited: " + Files.readString(log));
                try {
                    status = health.check(HealthCheckRequest.getDefaultInstance()).getStatus();
                } catch (StatusRuntimeException notYet) {
                    // not listening yet
                }
                if (status != HealthCheckResponse.ServingStatus.SERVING) {
                    Thread.sleep(100);
                }
            }
            assertEquals(HealthCheckResponse.ServingStatus.SERVING, status, Files.readString(log));
        }

        GenerationServiceGrpc.GenerationServiceBlockingStub api() {
            return GenerationServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
        }

        @Override
        public void close() throws Exception {
            channel.shutdownNow();
            process.destroy(); // SIGTERM: a drain
            if (!process.waitFor(30, TimeUnit.SECONDS)) {
                process.destroyForcibly();
            }
        }
    }

    /** Golden prompt {@code i}'s prefill logits and two greedy tokens through {@code c}. */
    private static void assertGolden(Coordinator c, int i) {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(i);
        LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(2);
        IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
        LogitsResponse r = c.api().logits(req.build());
        float[] prefill = new float[r.getVocabSize()];
        r.getSteps(0).getLogits().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(prefill);
        assertTrue(Golden.maxAbsDiff(g.prefillLogits(), prefill) < Golden.LOGIT_TOL, "prompt " + i);
        assertEquals(g.greedyTokens()[0], r.getSteps(0).getArgmax());
        assertEquals(g.greedyTokens()[1], r.getSteps(1).getArgmax());
    }

    @Test
    void servesGoldenLogitsOnceTheWorkerHasJoined() throws Exception {
        try (TestingServer zk = new TestingServer(true);
                // The coordinator starts first: it serves (NOT_SERVING) until the worker joins. With two-batch
                // overlap, which its warm-up's steps of several sequences run through.
                Coordinator coordinator = Coordinator.start(zk.getConnectString(), "coordinator-command",
                        "--enable-two-batch-overlap");
                WorkerProcess worker = WorkerProcess.start(MODEL, zk.getConnectString(), "cmd", "all", "0-255")) {
            coordinator.awaitServing();
            // Both warmed up first: the worker before it announced itself, the coordinator before it was ready.
            assertTrue(Files.readString(worker.log).contains("compiled the expert kernels before serving"), worker.log.toString());
            assertTrue(Files.readString(coordinator.log()).contains("forward warm-up: 26 steps"),
                    Files.readString(coordinator.log()));
            assertTrue(Files.readString(coordinator.log()).contains(", two-batch overlap"), "the flag is on");
            assertEquals(1, coordinator.api().modelInfo(ModelInfoRequest.getDefaultInstance()).getExpertWorkersCount());
            assertGolden(coordinator, 0);
        }
    }

    /**
     * More than one coordinator (replicas behind one Service): both serve from the same expert workers at
     * once, each with its own batches, and one going away leaves the other serving.
     */
    @Test
    void coordinatorsShareTheWorkersAndOutliveEachOther() throws Exception {
        try (TestingServer zk = new TestingServer(true);
                WorkerProcess worker = WorkerProcess.start(MODEL, zk.getConnectString(), "cmd", "all", "0-255");
                Coordinator first = Coordinator.start(zk.getConnectString(), "coordinator-first");
                Coordinator second = Coordinator.start(zk.getConnectString(), "coordinator-second")) {
            first.awaitServing();
            second.awaitServing();
            int prompts = Golden.of("tiny-v3").prompts().size();
            CompletableFuture<?>[] all = new CompletableFuture<?>[2 * prompts];
            try (ExecutorService clients = Executors.newFixedThreadPool(2 * prompts)) { // all in flight at once
                for (int i = 0; i < prompts; i++) {
                    int p = i;
                    all[2 * i] = CompletableFuture.runAsync(() -> assertGolden(first, p), clients);
                    all[2 * i + 1] = CompletableFuture.runAsync(() -> assertGolden(second, p), clients);
                }
                CompletableFuture.allOf(all).get(120, TimeUnit.SECONDS);
            }
            first.close();
            assertGolden(second, 0);
        }
    }
}
