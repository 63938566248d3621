package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.Messages;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.TokenIds;
import io.grpc.Context;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;
import org.junit.jupiter.api.Timeout;

/**
 * The public API of a real {@code epic local} cluster (3 expert-worker JVMs, every expert on 2 of
 * them) serving a synthetic model with DeepSeek-V3's real vocabulary and chat template.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class GenerationClusterIT {
    private static final int MAX_BATCH = 8;
    private static final int MAX_QUEUE = 2;
    private static EpicLocal cluster;
    private static GenerationServiceGrpc.GenerationServiceBlockingStub api;
    private static int httpPort;

    @BeforeAll
    static void start() throws Exception {
        try (ServerSocket s = new ServerSocket(0)) {
            httpPort = s.getLocalPort();
        }
        cluster = EpicLocal.start("generation-cluster", "--model", EpicLocal.demoModel().toString(),
                "--expert-workers", "3", "--replication", "2", "--max-batch", "" + MAX_BATCH, "--max-queue", "" + MAX_QUEUE,
                "--http-port", "" + httpPort);
        api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
    }

    @AfterAll
    static void stop() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    static GenerateRequest chat(String question, long seed, int maxTokens) {
        return GenerateRequest.newBuilder()
                .setChat(Messages.newBuilder()
                        .addMessages(ChatMessage.newBuilder().setRole("system").setContent("Answer briefly."))
                        .addMessages(ChatMessage.newBuilder().setRole("user").setContent(question)))
                .setSampling(SamplingParams.newBuilder().setTemperature(0.8f).setTopP(0.95f).setSeed(seed)
                        .setMaxTokens(maxTokens).setIgnoreEos(true))
                .build();
    }

    static List<Integer> tokens(List<GenerateResponse> stream) {
        return stream.stream().flatMap(r -> r.getTokenIdsList().stream()).toList();
    }

    static List<GenerateResponse> run(GenerateRequest req) {
        List<GenerateResponse> out = new ArrayList<>();
        api.withDeadlineAfter(120, TimeUnit.SECONDS).generate(req).forEachRemaining(out::add);
        return out;
    }

    @Test
    @Order(1)
    void modelInfoListsTheWorkers() {
        ModelInfoResponse info = api.modelInfo(ModelInfoRequest.getDefaultInstance());
        assertEquals(129280, info.getVocabSize());
        assertEquals(3, info.getExpertWorkersCount());
        assertEquals(3, cluster.workers.size());
    }

    @Test
    @Order(2)
    void theOpenAiHttpApiGivesTheGrpcAnswer() throws Exception {
        List<GenerateResponse> ref = run(chat("Name a colour.", 9, 6));
        StringBuilder content = new StringBuilder(), reasoning = new StringBuilder();
        ref.forEach(r -> {
            content.append(r.getText());
            reasoning.append(r.getReasoningText());
        });
        assertFalse(content.isEmpty() && reasoning.isEmpty(), "the model said something");
        String body = """
                {"model": "demo-v3", "messages": [{"role": "system", "content": "Answer briefly."},
                 {"role": "user", "content": "Name a colour."}],
                 "temperature": 0.8, "top_p": 0.95, "seed": 9, "max_tokens": 6, "ignore_eos": true}""";
        try (HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build()) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort
                    + "/v1/chat/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            JsonNode answer = new ObjectMapper().readTree(r.body());
            JsonNode message = answer.get("choices").get(0).get("message");
            assertEquals(content.toString(), message.get("content").asText());
            assertEquals(reasoning.toString(), message.path("reasoning_content").asText(""));
            assertEquals(6, answer.get("usage").get("completion_tokens").asInt());
        }
    }

    @Test
    @Order(3)
    void concurrentStreamsGiveTheSameTokensAsOneAtATime() throws Exception {
        List<GenerateRequest> requests = new ArrayList<>();
        for (int i = 0; i < MAX_BATCH; i++) {
            requests.add(chat("Question number " + i + ": what is " + i + " + " + (i * 7) + "?", 1000 + i, 8 + i));
        }
        // Concurrent first, on a cold prefix cache: every prompt is prefilled in full, batched together.
        var async = GenerationServiceGrpc.newStub(cluster.channel).withDeadlineAfter(180, TimeUnit.SECONDS);
        List<CompletableFuture<List<GenerateResponse>>> futures = new ArrayList<>();
        for (GenerateRequest r : requests) {
            CompletableFuture<List<GenerateResponse>> f = new CompletableFuture<>();
            List<GenerateResponse> got = new ArrayList<>();
            async.generate(r, new StreamObserver<>() {
                public void onNext(GenerateResponse v) { got.add(v); }
                public void onError(Throwable t) { f.completeExceptionally(t); }
                public void onCompleted() { f.complete(got); }
            });
            futures.add(f);
        }
        List<List<Integer>> concurrent = new ArrayList<>();
        for (int i = 0; i < requests.size(); i++) {
            GenerateResponse last = futures.get(i).get(180, TimeUnit.SECONDS).getLast();
            assertEquals(FinishReason.LENGTH, last.getFinishReason());
            assertEquals(requests.get(i).getSampling().getMaxTokens(), last.getUsage().getCompletionTokens());
            assertTrue(last.getUsage().getPromptTokens() > 10);
            concurrent.add(tokens(futures.get(i).get()));
        }
        // Then one at a time: each prompt is now in the prefix cache (on by default), so every whole
        // 16-token block but the one holding the last prompt token comes from it.
        for (int i = 0; i < requests.size(); i++) {
            List<GenerateResponse> s = run(requests.get(i));
            assertEquals(concurrent.get(i), tokens(s), "request " + i);
            int prompt = s.getLast().getUsage().getPromptTokens();
            assertEquals((prompt - 1) / 16 * 16, s.getLast().getUsage().getCachedPromptTokens(), "request " + i);
        }
    }

    private static String invalid(GenerateRequest req) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> run(req));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
        return e.getStatus().getDescription();
    }

    @Test
    @Order(4)
    void badRequestsAreInvalidArgument() {
        assertTrue(invalid(GenerateRequest.getDefaultInstance()).contains("prompt is empty"));
        assertTrue(invalid(chat("hi", 1, 4).toBuilder().setSampling(SamplingParams.newBuilder().setTopP(0)).build())
                .contains("top_p"));
        assertTrue(invalid(GenerateRequest.newBuilder().setTokenIds(TokenIds.newBuilder().addIds(0).addIds(129280))
                .build()).contains("outside the vocabulary"));
        GenerateRequest role = GenerateRequest.newBuilder().setChat(Messages.newBuilder()
                .addMessages(ChatMessage.newBuilder().setRole("robot").setContent("beep"))).build();
        assertTrue(invalid(role).contains("role 'robot'"));
    }

    @Test
    @Order(5)
    void fullQueueIsResourceExhausted() throws Exception {
        GenerateRequest endless = chat("Tell me everything.", 3, 100_000);
        try (Context.CancellableContext ctx = Context.current().withCancellation()) {
            for (int i = 0; i < MAX_BATCH; i++) {
                Iterator<GenerateResponse> it = ctx.call(() -> api.generate(endless));
                it.next(); // running: it holds a batch slot
            }
            var async = GenerationServiceGrpc.newStub(cluster.channel);
            List<CompletableFuture<Status>> waiting = new ArrayList<>();
            for (int i = 0; i < MAX_QUEUE; i++) {
                CompletableFuture<Status> f = new CompletableFuture<>();
                ctx.run(() -> async.generate(endless, new StreamObserver<>() {
                    public void onNext(GenerateResponse v) { }
                    public void onError(Throwable t) { f.complete(Status.fromThrowable(t)); }
                    public void onCompleted() { f.complete(Status.OK); }
                }));
                waiting.add(f);
            }
            // The queue is full once both waiting calls have reached the server (probing earlier could
            // take a place of theirs, and cancelled probes hold none).
            for (int attempt = 0; api.stats(StatsRequest.getDefaultInstance()).getWaiting() < MAX_QUEUE; attempt++) {
                assertTrue(attempt < 300, "the waiting calls never reached the queue");
                Thread.sleep(100);
            }
            StatusRuntimeException refused = assertThrows(StatusRuntimeException.class, () ->
                    api.withDeadlineAfter(30, TimeUnit.SECONDS).generate(chat("one more", 4, 1)).forEachRemaining(r -> { }));
            assertEquals(Status.Code.RESOURCE_EXHAUSTED, refused.getStatus().getCode(), refused.toString());
            for (CompletableFuture<Status> f : waiting) {
                assertFalse(f.isDone(), "a waiting call ended early: " + (f.isDone() ? f.join() : ""));
            }
            assertTrue(refused.getStatus().getDescription().contains("max-queue " + MAX_QUEUE));
            ctx.cancel(null);
            for (CompletableFuture<Status> f : waiting) {
                assertFalse(f.get(30, TimeUnit.SECONDS).isOk());
            }
        }
        // The cancellations reach the server asynchronously; then the slots are free again.
        for (int attempt = 0; ; attempt++) {
            try {
                assertEquals(1, tokens(run(chat("ping", 5, 1))).size());
                break;
            } catch (StatusRuntimeException e) {
                assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode(), e.toString());
                assertTrue(attempt < 100, "slots never freed after cancelling");
                Thread.sleep(100);
            }
        }
    }

    /**
     * {@code epic batch --target}, a process of its own, with more requests at once than the coordinator
     * batches and queues (8 + 2): each line's answer, in input order, is the HTTP API's own answer to its
     * body (seeded sampling; one continuing an assistant prefix); the coordinator's refusals of the
     * overflow (429) are tried again until they run.
     */
    @Test
    @Order(6)
    void aBatchFileGetsTheApisAnswersInOrder(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) throws Exception {
        List<String> bodies = new ArrayList<>();
        List<String> lines = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            String body = i == 4
                    ? "{\"messages\": [{\"role\": \"user\", \"content\": \"Count.\"}, {\"role\": \"assistant\", "
                            + "\"content\": \"1, 2,\", \"prefix\": true}], \"seed\": 4, \"max_tokens\": 5, \"ignore_eos\": true}"
                    : "{\"messages\": [{\"role\": \"user\", \"content\": \"Name a colour, " + i + ".\"}], \"seed\": " + i
                            + ", \"max_tokens\": " + (3 + i % 5) + ", \"ignore_eos\": true}";
            bodies.add(body);
            lines.add("{\"custom_id\": \"job-" + i + "\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\", "
                    + "\"body\": " + body + "}");
        }
        java.nio.file.Path in = java.nio.file.Files.write(dir.resolve("in.jsonl"), lines);
        java.nio.file.Path out = dir.resolve("out.jsonl");
        Process p = new ProcessBuilder(EpicLocal.java("batch", "--target", cluster.target, "-i", in.toString(), "-o",
                out.toString(), "--concurrency", "12")).redirectErrorStream(true)
                .redirectOutput(EpicLocal.logFile("generation-cluster-batch").toFile()).start();
        assertTrue(p.waitFor(180, TimeUnit.SECONDS), "epic batch did not finish");
        String log = java.nio.file.Files.readString(EpicLocal.logFile("generation-cluster-batch"));
        assertEquals(0, p.exitValue(), log);
        assertTrue(log.contains("batch: 12 requests in") && log.contains("(0 failed, "), log);
        List<String> answers = java.nio.file.Files.readAllLines(out);
        assertEquals(12, answers.size());
        ObjectMapper json = new ObjectMapper();
        try (HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build()) {
            for (int i = 0; i < 12; i++) {
                JsonNode a = json.readTree(answers.get(i));
                assertEquals("job-" + i, a.get("custom_id").asText());
                assertEquals(200, a.get("response").get("status_code").asInt(), a.toString());
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + httpPort
                        + "/v1/chat/completions")).POST(HttpRequest.BodyPublishers.ofString(bodies.get(i))).build(),
                        HttpResponse.BodyHandlers.ofString());
                JsonNode direct = json.readTree(r.body());
                assertEquals(direct.get("choices"), a.get("response").get("body").get("choices"), "job-" + i);
                JsonNode usage = a.get("response").get("body").get("usage"); // cached tokens differ: the batch ran first
                assertEquals(direct.get("usage").get("prompt_tokens"), usage.get("prompt_tokens"), "job-" + i);
                assertEquals(direct.get("usage").get("completion_tokens"), usage.get("completion_tokens"), "job-" + i);
            }
        }
    }

    @Test
    @Order(7)
    void killingAReplicatedWorkerMidGenerationKeepsTheTokens() throws Exception {
        GenerateRequest req = chat("Count slowly from one to twenty.", 77, 40);
        List<Integer> expected = tokens(run(req));
        List<Integer> got = new ArrayList<>();
        FinishReason finish;
        Iterator<GenerateResponse> it = api.withDeadlineAfter(120, TimeUnit.SECONDS).generate(req);
        for (int i = 0; i < 5; i++) {
            got.addAll(it.next().getTokenIdsList());
        }
        EpicLocal.kill9(cluster.workers.get(1).pid());
        GenerateResponse last = null;
        while (it.hasNext()) {
            last = it.next();
            got.addAll(last.getTokenIdsList());
        }
        finish = last.getFinishReason();
        assertEquals(FinishReason.LENGTH, finish);
        assertEquals(expected, got);
        // And new requests still work on the two survivors.
        assertEquals(expected, tokens(run(req)));
        // epic local said so (it does not restart workers: a supervisor does).
        long pid = cluster.workers.get(1).pid();
        String said = "(pid " + pid + ") exited with code";
        for (int i = 0; i < 50 && !java.nio.file.Files.readString(cluster.log).contains(said); i++) {
            Thread.sleep(100);
        }
        assertTrue(java.nio.file.Files.readString(cluster.log).contains(said), "epic local's log names worker " + pid);
    }
}
