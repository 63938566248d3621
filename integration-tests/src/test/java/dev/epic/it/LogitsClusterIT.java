package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.TokenIds;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.StatusRuntimeException;
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * {@code epic local} on testdata/tiny-v3 with 2 workers and no replication: golden logits through the
 * public API and {@code epic logits --target}, then a worker's death (UNAVAILABLE, fast) and return.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class LogitsClusterIT {
    private static EpicLocal cluster;
    private static GenerationServiceGrpc.GenerationServiceBlockingStub api;
    private static final List<WorkerProcess> restarted = new ArrayList<>();

    @BeforeAll
    static void start() throws Exception {
        cluster = EpicLocal.start("logits-cluster", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "2", "--replication", "1");
        api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
    }

    @AfterAll
    static void stop() throws Exception {
        for (WorkerProcess w : restarted) {
            w.close();
        }
        if (cluster != null) {
            cluster.close();
        }
    }

    @Test
    @Order(1)
    void logitsThroughTheClusterMatchGolden() {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(3);
        LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(12);
        IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
        LogitsResponse r = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(req.build());
        assertEquals(13, r.getStepsCount());
        assertTrue(Golden.maxAbsDiff(g.prefillLogits(), floats(r, 0)) < Golden.LOGIT_TOL, "prefill");
        for (int k = 0; k < 12; k++) {
            assertEquals(g.greedyTokens()[k], r.getSteps(k).getArgmax(), "greedy token " + k);
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[k], floats(r, k + 1)) < Golden.LOGIT_TOL, "step " + k);
        }
    }

    static float[] floats(LogitsResponse r, int k) {
        float[] f = new float[r.getVocabSize()];
        r.getSteps(k).getLogits().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    @Test
    @Order(2)
    void logitsCommandWithTargetPrintsGolden() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(1);
        String ids = String.join(",", IntStream.of(g.tokens()).mapToObj(Integer::toString).toList());
        Process p = new ProcessBuilder(EpicLocal.java("logits", "--target", cluster.target, "--ids", ids, "--steps", "3"))
                .redirectError(EpicLocal.logFile("logits-target").toFile()).start();
        List<JsonNode> lines = new ArrayList<>();
        try (BufferedReader in = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = in.readLine()) != null; ) {
                lines.add(new ObjectMapper().readTree(line));
            }
        }
        assertTrue(p.waitFor(60, TimeUnit.SECONDS));
        assertEquals(0, p.exitValue());
        assertEquals(4, lines.size());
        for (int k = 0; k < 4; k++) {
            JsonNode l = lines.get(k);
            assertEquals(k, l.get("step").asInt());
            float[] got = Golden.floats(l.get("logits"));
            float[] want = k == 0 ? g.prefillLogits() : g.stepLogits()[k - 1];
            assertTrue(Golden.maxAbsDiff(want, got) < Golden.LOGIT_TOL, "step " + k);
            assertEquals(g.greedyTokens()[k], l.get("token").asInt());
        }
    }

    /** grpc.health.v1 follows expert coverage (refreshed every second). */
    static void awaitHealth(HealthCheckResponse.ServingStatus want) throws InterruptedException {
        var health = HealthGrpc.newBlockingStub(cluster.channel);
        HealthCheckResponse.ServingStatus now = null;
        for (int attempt = 0; attempt < 300 && now != want; attempt++) {
            now = health.check(HealthCheckRequest.newBuilder().setService("epic.v1.GenerationService").build()).getStatus();
            if (now != want) {
                Thread.sleep(100);
            }
        }
        assertEquals(want, now);
    }

    static GenerateRequest greedy(int maxTokens) {
        return GenerateRequest.newBuilder().setTokenIds(TokenIds.newBuilder().addIds(5).addIds(17).addIds(4))
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(maxTokens).setIgnoreEos(true))
                .build();
    }

    static List<Integer> tokens(GenerateRequest req) {
        List<Integer> out = new ArrayList<>();
        api.withDeadlineAfter(30, TimeUnit.SECONDS).generate(req).forEachRemaining(r -> out.addAll(r.getTokenIdsList()));
        return out;
    }

    @Test
    @Order(3)
    void losingTheOnlyReplicaIsUnavailableUntilAWorkerReturns() throws Exception {
        List<Integer> expected = tokens(greedy(16));
        EpicLocal.Worker victim = cluster.workers.get(0);
        Iterator<GenerateResponse> it = api.withDeadlineAfter(60, TimeUnit.SECONDS).generate(greedy(100_000));
        it.next();
        EpicLocal.kill9(victim.pid());
        // The running stream fails (not hangs) with UNAVAILABLE naming the lost experts.
        StatusRuntimeException running = assertThrows(StatusRuntimeException.class, () -> it.forEachRemaining(r -> { }));
        assertEquals(Status.Code.UNAVAILABLE, running.getStatus().getCode(), running.toString());
        // New requests too, within a short deadline.
        StatusRuntimeException fresh = assertThrows(StatusRuntimeException.class,
                () -> api.withDeadlineAfter(10, TimeUnit.SECONDS).generate(greedy(4)).forEachRemaining(r -> { }));
        assertEquals(Status.Code.UNAVAILABLE, fresh.getStatus().getCode(), fresh.toString());
        assertTrue(fresh.getStatus().getDescription().contains(victim.experts().split("-")[0]),
                fresh.getStatus().getDescription());
        awaitHealth(HealthCheckResponse.ServingStatus.NOT_SERVING);
        // A new worker with the same experts joins: service resumes with the same tokens.
        restarted.add(WorkerProcess.start(TestData.model("tiny-v3"), cluster.zk, cluster.cluster, "returned",
                victim.experts()));
        List<Integer> after = null;
        for (int attempt = 0; attempt < 600 && after == null; attempt++) {
            try {
                after = tokens(greedy(16));
            } catch (StatusRuntimeException e) {
                assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
                Thread.sleep(100);
            }
        }
        assertEquals(expected, after);
        awaitHealth(HealthCheckResponse.ServingStatus.SERVING);
        List<GenerateResponse> last = new ArrayList<>();
        api.generate(greedy(2)).forEachRemaining(last::add);
        assertEquals(FinishReason.LENGTH, last.getLast().getFinishReason());
    }

    @Test
    @Order(4)
    void workersDoNotOutliveAKilledEpicLocal() throws Exception {
        List<ProcessHandle> workers = new ArrayList<>();
        for (EpicLocal.Worker w : cluster.workers) {
            ProcessHandle.of(w.pid()).ifPresent(workers::add); // the one killed in order 3 is gone already
        }
        assertTrue(!workers.isEmpty(), "a spawned worker is still running before epic local dies");
        EpicLocal.kill9(cluster.process.pid()); // kill -9: no shutdown hook runs
        for (ProcessHandle w : workers) {
            w.onExit().get(30, TimeUnit.SECONDS);
            assertTrue(!w.isAlive(), "worker " + w.pid() + " outlived epic local");
        }
    }
}
