package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.TokenIds;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
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
 * {@code epic local} on testdata/tiny-v3 with data-parallel attention: 2 attention-worker processes
 * hold the sequences' MLA and KV caches, 1 expert worker the experts. Golden logits through the
 * public API, concurrent sequences spread over both attention workers, then one attention worker
 * killed mid-generation: its sequences end UNAVAILABLE, the others finish, new ones go to the survivor.
 * With two-batch overlap on, so its steps of several sequences run as two micro-batches, each one's
 * attention on the attention workers while the other's experts are on the expert worker.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class AttentionWorkersIT {
    private static EpicLocal cluster;
    private static GenerationServiceGrpc.GenerationServiceBlockingStub api;

    @BeforeAll
    static void start() throws Exception {
        cluster = EpicLocal.start("attention-workers", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "1", "--attention-workers", "2", "--enable-two-batch-overlap");
        api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
        assertEquals(2, cluster.attentionWorkers.size());
        assertTrue(java.nio.file.Files.readString(cluster.log).contains(", two-batch overlap"), "the flag is on");
    }

    @AfterAll
    static void stop() throws Exception {
        if (cluster != null) {
            cluster.close();
        }
    }

    private static void assertGolden(Golden.Prompt g, LogitsResponse r, int steps) {
        assertTrue(Golden.maxAbsDiff(g.prefillLogits(), LogitsClusterIT.floats(r, 0)) < Golden.LOGIT_TOL, "prefill");
        for (int k = 0; k < steps; k++) {
            assertEquals(g.greedyTokens()[k], r.getSteps(k).getArgmax(), "greedy token " + k);
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[k], LogitsClusterIT.floats(r, k + 1)) < Golden.LOGIT_TOL, "step " + k);
        }
    }

    private static LogitsRequest logits(Golden.Prompt g, int steps) {
        LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(steps);
        IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
        return req.build();
    }

    @Test
    @Order(1)
    void concurrentSequencesOnBothAttentionWorkersMatchGolden() throws Exception {
        List<Golden.Prompt> prompts = Golden.of("tiny-v3").prompts();
        var async = GenerationServiceGrpc.newFutureStub(cluster.channel).withDeadlineAfter(60, TimeUnit.SECONDS);
        List<com.google.common.util.concurrent.ListenableFuture<LogitsResponse>> answers = new ArrayList<>();
        for (Golden.Prompt g : prompts) {
            answers.add(async.logits(logits(g, 8)));
        }
        for (int i = 0; i < prompts.size(); i++) {
            assertGolden(prompts.get(i), answers.get(i).get(60, TimeUnit.SECONDS), 8);
        }
        // Alone now, and from the blocks the first run left on its worker: the same bits as among the
        // others (a request's result does not depend on the load; README "load invariance").
        LogitsResponse alone = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(logits(prompts.get(4), 8));
        for (int k = 0; k <= 8; k++) {
            org.junit.jupiter.api.Assertions.assertArrayEquals(LogitsClusterIT.floats(answers.get(4).get(), k),
                    LogitsClusterIT.floats(alone, k), "prompt 4, output " + k + ": alone against among the others");
        }
        ModelInfoResponse info = api.modelInfo(ModelInfoRequest.getDefaultInstance());
        assertEquals(2, info.getAttentionWorkersCount());
        StatsResponse stats = api.stats(StatsRequest.getDefaultInstance());
        assertTrue(stats.getRemoteAttention());
        int layers = info.getNumLayers();
        assertTrue(stats.getAttentionLayerCalls() >= (long) layers * 9, "every step calls the workers once per layer");
        assertEquals(0, stats.getAttentionSequencesLost());
    }

    /** Greedy generation of 4 tokens after the golden prompt of 300 tokens; the stream's responses. */
    private static List<GenerateResponse> greedyAfterGoldenPrompt() {
        GenerateRequest.Builder req = GenerateRequest.newBuilder()
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(4).setIgnoreEos(true));
        TokenIds.Builder ids = TokenIds.newBuilder();
        IntStream.of(Golden.of("tiny-v3").prompts().get(4).tokens()).forEach(ids::addIds);
        List<GenerateResponse> out = new ArrayList<>();
        api.withDeadlineAfter(60, TimeUnit.SECONDS).generate(req.setTokenIds(ids).build()).forEachRemaining(out::add);
        return out;
    }

    private static List<Integer> tokens(List<GenerateResponse> responses) {
        List<Integer> t = new ArrayList<>();
        responses.forEach(r -> t.addAll(r.getTokenIdsList()));
        return t;
    }

    /**
     * Prefix caching with attention workers: the second request with the same prompt is placed on the
     * worker that kept its blocks and starts from them (every whole block but the one holding the last
     * prompt token), and greedy decoding gives the golden tokens both times.
     */
    @Test
    @Order(2)
    void aRepeatedPromptStartsFromBlocksKeptOnItsWorker() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        List<Integer> golden = IntStream.of(g.greedyTokens()).limit(4).boxed().toList();
        List<GenerateResponse> first = greedyAfterGoldenPrompt();
        assertEquals(golden, tokens(first));
        List<GenerateResponse> second = greedyAfterGoldenPrompt();
        assertEquals(golden, tokens(second));
        assertEquals((300 - 1) / 16 * 16, second.getLast().getUsage().getCachedPromptTokens());
    }

    private static GenerateRequest longGeneration(int seed) {
        return GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addIds(5).addIds(17).addIds(4 + seed))
                .setSampling(SamplingParams.newBuilder().setTemperature(0.8f).setSeed(seed).setMaxTokens(3000)
                        .setIgnoreEos(true))
                .build();
    }

    @Test
    @Order(3)
    void killingAnAttentionWorkerEndsOnlyItsSequences() throws Exception {
        int n = 4;
        List<CompletableFuture<Status>> ends = new ArrayList<>();
        List<int[]> counts = new ArrayList<>();
        List<FinishReason[]> reasons = new ArrayList<>();
        CountDownLatch started = new CountDownLatch(n);
        var async = GenerationServiceGrpc.newStub(cluster.channel).withDeadlineAfter(180, TimeUnit.SECONDS);
        for (int i = 0; i < n; i++) {
            CompletableFuture<Status> end = new CompletableFuture<>();
            int[] count = new int[1];
            FinishReason[] reason = new FinishReason[1];
            ends.add(end);
            counts.add(count);
            reasons.add(reason);
            async.generate(longGeneration(i), new StreamObserver<>() {
                @Override
                public void onNext(GenerateResponse r) {
                    if (count[0] == 0) {
                        started.countDown();
                    }
                    count[0] += r.getTokenIdsCount();
                    if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
                        reason[0] = r.getFinishReason(); // asserted on the test's thread, not gRPC's
                    }
                }

                @Override
                public void onError(Throwable t) {
                    end.complete(Status.fromThrowable(t));
                }

                @Override
                public void onCompleted() {
                    end.complete(Status.OK);
                }
            });
        }
        assertTrue(started.await(60, TimeUnit.SECONDS), "every sequence has a token, so each is placed");
        EpicLocal.kill9(cluster.attentionWorkers.get(0));
        int failed = 0;
        int finished = 0;
        for (int i = 0; i < n; i++) {
            Status s = ends.get(i).get(120, TimeUnit.SECONDS);
            if (s.isOk()) {
                finished++;
                assertEquals(3000, counts.get(i)[0], "a surviving sequence streams all its tokens");
                assertEquals(FinishReason.LENGTH, reasons.get(i)[0]);
            } else {
                failed++;
                assertEquals(Status.Code.UNAVAILABLE, s.getCode(), s.toString());
                assertTrue(s.getDescription().contains("attention worker"), s.getDescription());
            }
        }
        // Placement spreads 4 sequences 2 + 2, and only the killed worker's sequences end.
        assertEquals(2, failed, "sequences lost with the killed attention worker");
        assertEquals(2, finished, "sequences on the surviving attention worker");

        // New sequences go to the survivor at once (one placed on the dead worker while it is still
        // registered moves over before its first step completes).
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(0);
        LogitsResponse r = api.withDeadlineAfter(30, TimeUnit.SECONDS).logits(logits(g, 4));
        assertGolden(g, r, 4);
        assertTrue(api.stats(StatsRequest.getDefaultInstance()).getAttentionSequencesLost() >= 2);
    }
}
