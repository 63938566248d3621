package dev.epic.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.RemoteExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.coordinator.experts.StallingShard;
import dev.epic.coordinator.scheduler.FailingExperts;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.Golden;
import dev.epic.model.HeapKvCache;
import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.DetokenizeRequest;
import dev.epic.proto.DetokenizeResponse;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.Messages;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.ResponseFormat;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.TokenIds;
import dev.epic.proto.TokenLogprob;
import dev.epic.proto.TokenizeRequest;
import dev.epic.proto.TokenizeResponse;
import dev.epic.text.output.ReasoningMode;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.ExpertShard;
import dev.epic.worker.ExpertWorker;
import io.grpc.CallOptions;
import io.grpc.Context;
import io.grpc.reflection.v1.ServerReflectionGrpc;
import io.grpc.reflection.v1.ServerReflectionRequest;
import io.grpc.reflection.v1.ServerReflectionResponse;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import io.grpc.MethodDescriptor;
import io.grpc.stub.ClientCalls;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import dev.epic.transport.WorkerServer;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.SplittableRandom;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** The public API over real gRPC on loopback, engine on testdata/tiny-v3 with local experts. */
class GenerationServiceTest {
    // Large enough that an "endless" generation outlives every deadline below, however fast the machine.
    private static final int MAX_CONTEXT = 20_000;
    private static CoordinatorServer server;
    private static ManagedChannel channel;
    private static GenerationServiceGrpc.GenerationServiceBlockingStub api;

    @BeforeAll
    static void start() throws Exception {
        ServedModel model = ServedModel.open(TestData.model("tiny-v3"), null, MAX_CONTEXT);
        // With a prefix cache, as served by default, so every test below also runs through it.
        server = CoordinatorServer.start(model, ExpertBackend.local(), new SchedulerOptions(4, 2, 32, 16L << 20),
                "127.0.0.1", 0);
        channel = channel(server.target());
        api = GenerationServiceGrpc.newBlockingStub(channel);
    }

    static ManagedChannel channel(String target) {
        return NettyChannelBuilder.forTarget(target).usePlaintext().maxInboundMessageSize(64 << 20).build();
    }

    @AfterAll
    static void stop() throws Exception {
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        server.close();
    }

    private static GenerateRequest ids(SamplingParams sampling, int... ids) {
        TokenIds.Builder t = TokenIds.newBuilder();
        for (int id : ids) {
            t.addIds(id);
        }
        return GenerateRequest.newBuilder().setTokenIds(t).setSampling(sampling).build();
    }

    private static List<GenerateResponse> collect(GenerateRequest req) {
        List<GenerateResponse> out = new ArrayList<>();
        api.generate(req).forEachRemaining(out::add);
        return out;
    }

    /**
     * Beam search through the scheduler returns what the same search over the engine's own forward passes
     * finds (each step's logits computed whole on fresh caches, not through batches and the prefix cache):
     * the same beams, best first, each replayed as a choice ending on EOS ("stop") or max_tokens ("length").
     * Logprobs are refused with it.
     */
    @Test
    void beamSearchFindsTheBeamsOfTheEnginesOwnForwardPasses() throws Exception {
        int width = 3;
        int maxTokens = 5;
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            dev.epic.model.Transformer engine = dev.epic.model.Transformer.load(checkpoint);
            int vocabulary = dev.epic.text.tokenizer.Tokenizer.fromModelDir(TestData.model("tiny-v3")).size();
            BeamSearch.Model forward = sequences -> {
                List<float[]> next = new ArrayList<>();
                for (int[] q : sequences) {
                    next.add(engine.forward(engine.newCache(), q));
                }
                return next;
            };
            int[] prompt = {5, 17, 4, 99, 250, 7};
            checkBeams(prompt, width, maxTokens, 0.7f, BeamSearch.search(prompt, width, maxTokens, 0.7, t -> t == 1, vocabulary, forward));
            // A prompt whose best beams include one ended by EOS (id 1), found among seeded random prompts: the
            // plain sum (length_penalty 0) favours the beams that end early.
            SplittableRandom r = new SplittableRandom(3);
            for (int attempt = 0; ; attempt++) {
                int[] q = r.ints(6, 2, 2000).toArray();
                List<BeamSearch.Beam> want = BeamSearch.search(q, width, maxTokens, 0, t -> t == 1, vocabulary, forward);
                if (want.stream().anyMatch(BeamSearch.Beam::completed)) {
                    checkBeams(q, width, maxTokens, 0f, want);
                    break;
                }
                assertTrue(attempt < 400, "no prompt among 400 has a beam ended by EOS");
            }
        }
    }

    private static void checkBeams(int[] prompt, int width, int maxTokens, float lengthPenalty, List<BeamSearch.Beam> want) {
        SamplingParams p = SamplingParams.newBuilder().setN(width).setMaxTokens(maxTokens).build();
        GenerateRequest req = ids(p, prompt).toBuilder()
                .setBeamSearch(dev.epic.proto.BeamSearch.newBuilder().setLengthPenalty(lengthPenalty)).build();
        List<GenerateResponse> stream = collect(req);
        for (int i = 0; i < width; i++) {
            final int index = i;
            List<GenerateResponse> choice = stream.stream().filter(r -> r.getIndex() == index).toList();
            List<Integer> tokens = new ArrayList<>();
            choice.forEach(r -> tokens.addAll(r.getTokenIdsList()));
            BeamSearch.Beam beam = want.get(i);
            int[] expected = beam.completed() ? IntStream.concat(IntStream.of(beam.tokens()), IntStream.of(beam.end()))
                    .toArray() : beam.tokens();
            assertArrayEquals(expected, tokens.stream().mapToInt(Integer::intValue).toArray(), "choice " + i);
            GenerateResponse last = choice.getLast();
            assertEquals(beam.completed() ? FinishReason.STOP : FinishReason.LENGTH, last.getFinishReason(), "choice " + i);
            assertEquals(prompt.length, last.getUsage().getPromptTokens());
        }
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> collect(req.toBuilder()
                .setSampling(p.toBuilder().setLogprobs(2)).build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("sampling.logprobs"), e.getStatus().getDescription());
    }

    @Test
    void generateStreamsOneTokenPerMessageAndEndsWithUsage() {
        SamplingParams p = SamplingParams.newBuilder().setTemperature(0.7f).setSeed(5).setMaxTokens(7)
                .setIgnoreEos(true).build();
        List<GenerateResponse> stream = collect(ids(p, 5, 17, 4, 99));
        assertEquals(7, stream.size());
        for (int i = 0; i < 6; i++) {
            assertEquals(1, stream.get(i).getTokenIdsCount());
            assertEquals(FinishReason.FINISH_REASON_UNSPECIFIED, stream.get(i).getFinishReason());
        }
        GenerateResponse last = stream.getLast();
        assertEquals(FinishReason.LENGTH, last.getFinishReason());
        assertEquals(4, last.getUsage().getPromptTokens());
        assertEquals(7, last.getUsage().getCompletionTokens());
        assertFalse(last.getRequestId().isEmpty());
        // Same seed, same tokens.
        List<GenerateResponse> again = collect(ids(p, 5, 17, 4, 99));
        assertEquals(tokens(stream), tokens(again));
    }

    /**
     * allowed_token_ids: greedy takes the most likely allowed token under the reference logits, with the
     * model's own logprob and rank; every token is one of them, sampled too, and with end of sequence not
     * among them the answer runs to max_tokens. Ids past the vocabulary and a constrained answer are refused.
     */
    @Test
    void onlyAllowedTokensAreChosen() {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(2);
        List<Integer> allowed = List.of(7, 300, 1200, 1999);
        float[] reference = g.prefillLogits();
        int best = allowed.stream().max(java.util.Comparator.comparingDouble(id -> reference[id])).orElseThrow();
        assertFalse(allowed.contains(g.greedyTokens()[0]), "the unrestricted choice is not allowed");
        SamplingParams greedy = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(6).setLogprobs(0)
                .addAllAllowedTokenIds(allowed).build();
        List<GenerateResponse> stream = collect(ids(greedy, g.tokens()));
        TokenLogprob first = stream.getFirst().getLogprobs(0);
        assertEquals(best, first.getTokenId());
        assertEquals(reference[best] - logSumExp(reference), first.getLogprob(), 2 * Golden.LOGIT_TOL);
        int rank = 0;
        for (float v : reference) {
            rank += v >= reference[best] ? 1 : 0;
        }
        assertEquals(rank, first.getRank());
        for (SamplingParams p : List.of(greedy, greedy.toBuilder().setTemperature(1).setSeed(5).build())) {
            List<GenerateResponse> out = collect(ids(p, g.tokens()));
            assertEquals(6, tokens(out).size());
            assertTrue(allowed.containsAll(tokens(out)), tokens(out).toString());
            assertEquals(FinishReason.LENGTH, out.getLast().getFinishReason());
        }
        assertTrue(invalid(ids(greedy.toBuilder().addAllowedTokenIds(2048).build(), g.tokens()))
                .contains("sampling.allowed_token_ids"));
        GenerateRequest json = ids(greedy, g.tokens()).toBuilder().setResponseFormat(
                ResponseFormat.newBuilder().setType(ResponseFormat.Type.JSON_OBJECT)).build();
        assertTrue(invalid(json).contains("allowed_token_ids cannot be combined"), invalid(json));
    }

    /** Logprobs of the golden greedy tokens against log_softmax of the reference logits. */
    @Test
    void logprobsFollowTheReferenceDistribution() {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(2);
        SamplingParams greedy = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(12).setIgnoreEos(true)
                .setLogprobs(3).build();
        List<GenerateResponse> stream = collect(ids(greedy, g.tokens()));
        List<TokenLogprob> got = stream.stream().flatMap(r -> r.getLogprobsList().stream()).toList();
        assertEquals(12, got.size());
        for (GenerateResponse r : stream) {
            assertEquals(r.getTokenIdsCount(), r.getLogprobsCount());
        }
        for (int k = 0; k < 12; k++) {
            float[] reference = k == 0 ? g.prefillLogits() : g.stepLogits()[k - 1];
            double logZ = logSumExp(reference);
            TokenLogprob t = got.get(k);
            assertEquals(g.greedyTokens()[k], t.getTokenId());
            // The logits match the reference within LOGIT_TOL, so a log-probability within twice that.
            assertEquals(reference[t.getTokenId()] - logZ, t.getLogprob(), 2 * Golden.LOGIT_TOL, "token " + k);
            assertEquals(3, t.getTopCount());
            assertEquals(t.getTokenId(), t.getTop(0).getTokenId()); // greedy takes the most likely
            for (int j = 0; j < 3; j++) {
                assertEquals(reference[t.getTop(j).getTokenId()] - logZ, t.getTop(j).getLogprob(), 2 * Golden.LOGIT_TOL);
            }
        }
        assertEquals(Status.Code.INVALID_ARGUMENT, assertThrows(StatusRuntimeException.class, () -> collect(ids(
                greedy.toBuilder().setLogprobs(21).build(), g.tokens()))).getStatus().getCode());
    }

    /**
     * Prompt logprobs of a golden prompt followed by its greedy tokens: at each of those positions,
     * log_softmax of the reference logits; and never served from the prefix cache. 76 tokens: three
     * prefill chunks on this server.
     */
    @Test
    void promptLogprobsFollowTheReferenceDistribution() {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(3);
        int p = g.tokens().length;
        int[] prompt = IntStream.concat(IntStream.of(g.tokens()), IntStream.of(g.greedyTokens()).limit(12)).toArray();
        SamplingParams req = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(1).setIgnoreEos(true)
                .setPromptLogprobs(2).build();
        for (int round = 0; round < 2; round++) {
            List<GenerateResponse> stream = collect(ids(req, prompt));
            List<TokenLogprob> got = stream.getFirst().getPromptLogprobsList();
            assertEquals(prompt.length - 1, got.size(), "every prompt token but the first");
            assertEquals(0, stream.getLast().getUsage().getCachedPromptTokens(), "round " + round);
            for (int k = 0; k < 12; k++) {
                float[] reference = k == 0 ? g.prefillLogits() : g.stepLogits()[k - 1];
                double logZ = logSumExp(reference);
                TokenLogprob t = got.get(p - 1 + k); // entry i is prompt token i + 1
                assertEquals(g.greedyTokens()[k], t.getTokenId());
                assertEquals(reference[t.getTokenId()] - logZ, t.getLogprob(), 2 * Golden.LOGIT_TOL, "prompt token " + (p + k));
                assertEquals(2, t.getTopCount());
                assertEquals(t.getTokenId(), t.getTop(0).getTokenId(), "greedy tokens are the most likely");
            }
            // The generated token comes from the last prompt position, as without prompt logprobs.
            assertEquals(tokens(collect(ids(req.toBuilder().clearPromptLogprobs().build(), prompt))), tokens(stream));
        }
        // Two samples: each gets the prompt's log-probabilities on its first message.
        List<GenerateResponse> two = collect(ids(req.toBuilder().setN(2).build(), prompt));
        List<List<TokenLogprob>> firsts = IntStream.range(0, 2).mapToObj(i -> two.stream()
                .filter(r -> r.getIndex() == i).findFirst().orElseThrow().getPromptLogprobsList()).toList();
        assertEquals(prompt.length - 1, firsts.get(0).size());
        assertEquals(firsts.get(0), firsts.get(1));
        assertEquals(Status.Code.INVALID_ARGUMENT, assertThrows(StatusRuntimeException.class, () -> collect(ids(
                req.toBuilder().setPromptLogprobs(21).build(), prompt))).getStatus().getCode());
    }

    @Test
    void aRepeatedPromptIsServedFromThePrefixCache() {
        int[] prompt = IntStream.range(0, 40).map(i -> 300 + 7 * i).toArray();
        SamplingParams p = SamplingParams.newBuilder().setTemperature(0.9f).setSeed(11).setMaxTokens(5)
                .setIgnoreEos(true).build();
        List<GenerateResponse> first = collect(ids(p, prompt));
        List<GenerateResponse> second = collect(ids(p, prompt));
        assertEquals(0, first.getLast().getUsage().getCachedPromptTokens());
        // Whole 16-token blocks, leaving the last prompt token to compute: 32 of 40.
        assertEquals(32, second.getLast().getUsage().getCachedPromptTokens());
        assertEquals(40, second.getLast().getUsage().getPromptTokens());
        assertEquals(tokens(first), tokens(second));
    }

    /** n samples: each is what one request with seed + i gives, and the prompt is prefilled once. */
    @Test
    void samplesOfOnePromptStreamTogetherAndShareItsPrefill() {
        int[] prompt = IntStream.range(0, 40).map(i -> 900 + 11 * i).toArray();
        SamplingParams p = SamplingParams.newBuilder().setTemperature(0.9f).setSeed(21).setMaxTokens(6)
                .setIgnoreEos(true).build();
        List<GenerateResponse> stream = collect(ids(p.toBuilder().setN(3).build(), prompt));
        for (int i = 0; i < 3; i++) {
            int index = i;
            List<GenerateResponse> mine = stream.stream().filter(r -> r.getIndex() == index).toList();
            assertEquals(6, mine.size());
            GenerateResponse last = mine.getLast();
            assertEquals(FinishReason.LENGTH, last.getFinishReason());
            assertEquals(6, last.getUsage().getCompletionTokens());
            // The first sample prefills the prompt; the others start from its 32 cached tokens.
            assertEquals(i == 0 ? 0 : 32, last.getUsage().getCachedPromptTokens(), "sample " + i);
            assertEquals(tokens(collect(ids(p.toBuilder().setSeed(21 + i).build(), prompt))), tokens(mine),
                    "sample " + i);
        }
        assertEquals(18, stream.size());
        for (int bad : new int[] {0, 7}) { // this server: max-batch 4 + max-queue 2
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                    () -> collect(ids(p.toBuilder().setN(bad).build(), prompt)));
            assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
            assertTrue(e.getStatus().getDescription().contains("sampling.n: must be in [1, 6]"), e.getMessage());
        }
    }

    /**
     * A priority on a first-come-first-served coordinator is INVALID_ARGUMENT, as in vLLM; on one started
     * with --scheduling-policy priority it is taken, and the answer is the same.
     */
    @Test
    void aPriorityNeedsThePriorityPolicy() throws Exception {
        SamplingParams p = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(4).setIgnoreEos(true).build();
        GenerateRequest plain = ids(p, 5, 6, 7, 8);
        GenerateRequest urgent = plain.toBuilder().setPriority(-2).build();
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> collect(urgent));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        assertTrue(e.getStatus().getDescription().contains("priority: must be 0"), e.getMessage());
        try (CoordinatorServer byPriority = CoordinatorServer.start(ServedModel.open(TestData.model("tiny-v3"), null,
                MAX_CONTEXT), ExpertBackend.local(), new SchedulerOptions(4, 2, 32).withPriorities(true), "127.0.0.1", 0)) {
            ManagedChannel ch = channel(byPriority.target());
            try {
                var stub = GenerationServiceGrpc.newBlockingStub(ch);
                List<Integer> got = new ArrayList<>();
                stub.generate(urgent).forEachRemaining(r -> got.addAll(r.getTokenIdsList()));
                assertEquals(tokens(collect(plain)), got);
                assertEquals("priority", stub.stats(dev.epic.proto.StatsRequest.getDefaultInstance()).getSchedulingPolicy());
                assertEquals("fcfs", api.stats(dev.epic.proto.StatsRequest.getDefaultInstance()).getSchedulingPolicy());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /** log(sum(exp(logits))), in double: log_softmax(x)[t] = x[t] - this. */
    private static double logSumExp(float[] logits) {
        double z = 0;
        for (float l : logits) {
            z += Math.exp(l);
        }
        return Math.log(z);
    }

    static List<Integer> tokens(List<GenerateResponse> stream) {
        return stream.stream().flatMap(r -> r.getTokenIdsList().stream()).toList();
    }

    @Test
    void greedyGenerationFollowsGoldenTokens() {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(1);
        SamplingParams greedy = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(12).setIgnoreEos(true).build();
        List<Integer> got = tokens(collect(ids(greedy, g.tokens())));
        assertEquals(IntStream.of(g.greedyTokens()).boxed().toList(), got);
    }

    @Test
    void logitsMatchGolden() {
        Golden golden = Golden.of("tiny-v3");
        for (int i : new int[] {1, 4}) { // 300 tokens: chunked through the 32-token prefill budget
            Golden.Prompt g = golden.prompts().get(i);
            LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(12);
            IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
            LogitsResponse r = api.logits(req.build());
            assertEquals(13, r.getStepsCount());
            assertEquals(2048, r.getVocabSize());
            assertTrue(Golden.maxAbsDiff(g.prefillLogits(), floats(r.getSteps(0).getLogits().toByteArray())) < Golden.LOGIT_TOL);
            for (int k = 0; k < 12; k++) {
                assertEquals(g.greedyTokens()[k], r.getSteps(k).getArgmax());
                assertTrue(Golden.maxAbsDiff(g.stepLogits()[k], floats(r.getSteps(k + 1).getLogits().toByteArray())) < Golden.LOGIT_TOL,
                        "prompt " + i + " step " + k);
            }
        }
    }

    static float[] floats(byte[] le) {
        float[] f = new float[le.length / 4];
        ByteBuffer.wrap(le).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(f);
        return f;
    }

    private static Status.Code codeOf(Runnable call) {
        return assertThrows(StatusRuntimeException.class, call::run).getStatus().getCode();
    }

    private static String invalid(GenerateRequest req) {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> collect(req));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
        return e.getStatus().getDescription();
    }

    /** Programs read the field at fault from a google.rpc.BadRequest detail, not from the text. */
    @Test
    void samplingErrorsCarryTheFieldAsABadRequestDetail() {
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> collect(ids(SamplingParams.newBuilder().setTopP(1.5f).build(), 3)));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode());
        com.google.rpc.BadRequest.FieldViolation v = FieldViolation.of(e);
        assertEquals("sampling.top_p", v.getField());
        assertEquals("sampling.top_p: " + v.getDescription(), e.getStatus().getDescription());
        assertFalse(v.getDescription().contains("top_p"), "the reason alone: " + v.getDescription());
        assertNull(FieldViolation.of(assertThrows(StatusRuntimeException.class,
                () -> collect(GenerateRequest.newBuilder().build()))), "no detail where no field is at fault");
    }

    /**
     * truncate_prompt_tokens: a prompt longer than the context is answered from its last N tokens, the
     * same tokens as sending those N alone (greedy); -1 keeps what the context holds.
     */
    @Test
    void aTruncatedPromptIsItsLastTokens() {
        SamplingParams greedy = SamplingParams.newBuilder().setMaxTokens(3).setTemperature(0).setIgnoreEos(true).build();
        int[] longPrompt = new int[MAX_CONTEXT + 5];
        for (int i = 0; i < longPrompt.length; i++) {
            longPrompt[i] = (i * 37 + 11) % 2048;
        }
        List<GenerateResponse> cut = collect(ids(greedy, longPrompt).toBuilder().setTruncatePromptTokens(6).build());
        List<GenerateResponse> alone = collect(ids(greedy, java.util.Arrays.copyOfRange(longPrompt, longPrompt.length - 6,
                longPrompt.length)));
        assertEquals(6, cut.getLast().getUsage().getPromptTokens());
        assertEquals(tokens(alone), tokens(cut));
        String all = invalid(ids(greedy, longPrompt).toBuilder().setTruncatePromptTokens(-1).build());
        assertTrue(all.contains("has " + MAX_CONTEXT + " tokens"), all); // cut to the context, which leaves no room
    }

    @Test
    void badRequestsAreInvalidArgumentNamingTheProblem() {
        SamplingParams ok = SamplingParams.newBuilder().setMaxTokens(2).build();
        assertTrue(invalid(GenerateRequest.newBuilder().build()).contains("prompt is empty"));
        assertTrue(invalid(ids(ok)).contains("prompt is empty"));
        assertTrue(invalid(ids(ok, 3, 2048)).contains("token_ids.ids[1] = 2048 is outside the vocabulary [0, 2048)"));
        assertTrue(invalid(ids(SamplingParams.newBuilder().setTemperature(-1).build(), 3)).contains("sampling.temperature"));
        assertTrue(invalid(ids(SamplingParams.newBuilder().setTopP(1.5f).build(), 3)).contains("sampling.top_p"));
        assertTrue(invalid(ids(SamplingParams.newBuilder().setMaxTokens(0).build(), 3)).contains("sampling.max_tokens"));
        assertTrue(invalid(ids(SamplingParams.newBuilder().setMaxTokens(2).setMinTokens(3).build(), 3))
                .contains("sampling.min_tokens"));
        assertTrue(invalid(ids(ok, new int[MAX_CONTEXT])).contains("context holds " + MAX_CONTEXT));
        // max_tokens past the end of the context is refused (as vLLM does), not cut short.
        String past = invalid(ids(SamplingParams.newBuilder().setMaxTokens(MAX_CONTEXT - 2).build(), 3, 4, 5));
        assertTrue(past.contains("sampling.max_tokens: " + (MAX_CONTEXT - 2)) && past.contains("at most " + (MAX_CONTEXT - 3)),
                past);
        GenerateRequest badRole = GenerateRequest.newBuilder().setChat(Messages.newBuilder()
                .addMessages(ChatMessage.newBuilder().setRole("wizard").setContent("hi"))).build();
        assertTrue(invalid(badRole).contains("chat.messages[0].role 'wizard'"));
        GenerateRequest noMessages = GenerateRequest.newBuilder().setChat(Messages.newBuilder()).build();
        assertTrue(invalid(noMessages).contains("chat.messages is empty"));
        // The real DeepSeek vocabulary's chat tokens do not fit tiny-v3's 2048-id lm_head.
        GenerateRequest chat = GenerateRequest.newBuilder().setChat(Messages.newBuilder()
                .addMessages(ChatMessage.newBuilder().setRole("user").setContent("hi"))).build();
        assertTrue(invalid(chat).contains("outside the model's vocabulary [0, 2048)"));
        // Prefill is for chat prompts; truncation keeps a prompt's end, within the context.
        assertTrue(invalid(ids(ok, 3, 4).toBuilder().setContinueFinalMessage(true).build())
                .contains("continue_final_message is only for a chat prompt"));
        assertTrue(invalid(ids(ok, 3, 4).toBuilder().setAddGenerationPrompt(false).build())
                .contains("add_generation_prompt is only for a chat prompt"));
        assertTrue(invalid(ids(ok, 3, 4).toBuilder().setTruncatePromptTokens(0).build())
                .contains("truncate_prompt_tokens must be >= 1 or -1"));
        assertTrue(invalid(ids(ok, 3, 4).toBuilder().setTruncatePromptTokens(MAX_CONTEXT + 1).build())
                .contains("more than the context holds (" + MAX_CONTEXT + ")"));
        LogitsRequest badLogits = LogitsRequest.newBuilder().addPromptTokenIds(99999).build();
        assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(() -> api.logits(badLogits)));
        assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(() -> api.logits(LogitsRequest.getDefaultInstance())));
    }

    @Test
    void invalidUtf8IsInvalidArgument() {
        MethodDescriptor<byte[], byte[]> raw = GenerationServiceGrpc.getTokenizeMethod().toBuilder(RAW, RAW).build();
        // TokenizeRequest.text (field 1, length-delimited) = 0xC3 0x28: a lead byte without its continuation.
        byte[] request = {0x0A, 0x02, (byte) 0xC3, 0x28};
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                () -> ClientCalls.blockingUnaryCall(channel, raw, CallOptions.DEFAULT, request));
        assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
        assertTrue(e.getStatus().getDescription().contains("TokenizeRequest"), e.getStatus().getDescription());
        assertTrue(e.getStatus().getDescription().contains("UTF-8"), e.getStatus().getDescription());
        // The same bytes with valid UTF-8 are served.
        byte[] ok = {0x0A, 0x02, (byte) 0xC3, (byte) 0xA9};
        assertTrue(ClientCalls.blockingUnaryCall(channel, raw, CallOptions.DEFAULT, ok).length > 0);
    }

    private static final MethodDescriptor.Marshaller<byte[]> RAW = new MethodDescriptor.Marshaller<>() {
        public java.io.InputStream stream(byte[] v) {
            return new java.io.ByteArrayInputStream(v);
        }

        public byte[] parse(java.io.InputStream in) {
            try {
                return in.readAllBytes();
            } catch (java.io.IOException e) {
                throw new java.io.UncheckedIOException(e);
            }
        }
    };

    /** Where a constrained answer starts, by the prompt's end, the request's switch and the model. */
    @Test
    void constrainedAnswersThinkFirstOnlyWhereTheModelAndPromptLetThem() {
        assertEquals(ReasoningMode.NONE, GenerationServiceImpl.thinkFirst(false, ReasoningMode.OPEN, true, true));
        assertEquals(ReasoningMode.OPEN, GenerationServiceImpl.thinkFirst(true, ReasoningMode.OPEN, false, false));
        assertEquals(ReasoningMode.DETECT, GenerationServiceImpl.thinkFirst(true, ReasoningMode.DETECT, true, true));
        assertEquals(ReasoningMode.NONE, GenerationServiceImpl.thinkFirst(true, ReasoningMode.DETECT, true, false),
                "a model without thinking (V3) answers at once");
        assertEquals(ReasoningMode.NONE, GenerationServiceImpl.thinkFirst(true, ReasoningMode.DETECT, false, true));
        assertEquals(ReasoningMode.NONE, GenerationServiceImpl.thinkFirst(true, ReasoningMode.NONE, true, true),
                "the prompt closed the block");
    }

    @Test
    void tokenizeRendersTheChatTemplate() {
        TokenizeResponse plain = api.tokenize(TokenizeRequest.newBuilder().setText("Hello world").build());
        assertTrue(plain.getTokenIdsCount() >= 2);
        TokenizeResponse chat = api.tokenize(TokenizeRequest.newBuilder().setAddGenerationPrompt(true)
                .setChat(Messages.newBuilder()
                        .addMessages(ChatMessage.newBuilder().setRole("system").setContent("Be brief."))
                        .addMessages(ChatMessage.newBuilder().setRole("user").setContent("Hello world")))
                .build());
        assertEquals("<｜begin▁of▁sentence｜>Be brief.<｜User｜>Hello world<｜Assistant｜>", chat.getText());
        assertEquals(0, chat.getTokenIds(0)); // BOS
        assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(() -> api.tokenize(TokenizeRequest.getDefaultInstance())));
        // Tools go into a chat template: with text, as Generate, refused rather than ignored.
        assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(() -> api.tokenize(TokenizeRequest.newBuilder().setText("hi")
                .addTools(dev.epic.proto.Tool.newBuilder().setName("f")).build())));
    }

    @Test
    void detokenizeInvertsTokenizeAndGivesEachTokensBytes() {
        TokenizeResponse t = api.tokenize(TokenizeRequest.newBuilder().setText("Hello wörld").build());
        DetokenizeResponse d = api.detokenize(DetokenizeRequest.newBuilder().addAllTokenIds(t.getTokenIdsList()).build());
        assertEquals("Hello wörld", d.getText());
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        d.getTokensList().forEach(b -> bytes.writeBytes(b.toByteArray()));
        assertEquals("Hello wörld", bytes.toString(java.nio.charset.StandardCharsets.UTF_8));
        assertEquals(t.getTokenIdsCount(), d.getTokensCount());
        DetokenizeResponse special = api.detokenize(DetokenizeRequest.newBuilder().addTokenIds(0)
                .addAllTokenIds(t.getTokenIdsList()).setSkipSpecialTokens(true).build());
        assertEquals("Hello wörld", special.getText());
        assertEquals(Status.Code.INVALID_ARGUMENT, codeOf(() -> api.detokenize(
                DetokenizeRequest.newBuilder().addTokenIds(Integer.MAX_VALUE).build())));
    }

    @Test
    void modelInfoAndHealth() {
        ModelInfoResponse info = api.modelInfo(ModelInfoRequest.getDefaultInstance());
        assertEquals("deepseek_v3", info.getModelType());
        assertEquals(2048, info.getVocabSize());
        assertEquals(256, info.getNumRoutedExperts());
        assertEquals(8, info.getExpertsPerToken());
        assertEquals(MAX_CONTEXT, info.getMaxContext());
        assertEquals(64, info.getFingerprint().getSha256().length());
        HealthCheckResponse h = HealthGrpc.newBlockingStub(channel).check(
                HealthCheckRequest.newBuilder().setService(CoordinatorServer.SERVICE).build());
        assertEquals(HealthCheckResponse.ServingStatus.SERVING, h.getStatus());
    }

    /**
     * With the warm-up asked for, health says NOT_SERVING until it has run on the engine (held back
     * here behind another idle job), then SERVING.
     */
    @Test
    void readinessWaitsForTheWarmUp() throws Exception {
        ServedModel model = ServedModel.open(TestData.model("tiny-v3"), null, MAX_CONTEXT);
        CoordinatorServer s = CoordinatorServer.start(model, ExpertBackend.local(), new SchedulerOptions(4, 2, 32),
                "127.0.0.1", 0);
        ManagedChannel ch = channel(s.target());
        try {
            awaitHealth(ch, HealthCheckResponse.ServingStatus.SERVING);
            CountDownLatch release = new CountDownLatch(1);
            s.scheduler().runWhenIdle(() -> {
                try {
                    release.await();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            });
            s.warmUp();
            awaitHealth(ch, HealthCheckResponse.ServingStatus.NOT_SERVING);
            var api = GenerationServiceGrpc.newBlockingStub(ch);
            assertTrue(api.stats(StatsRequest.getDefaultInstance()).getWarmingUp());
            assertFalse(s.awaitWarmUp(Duration.ofMillis(1500)), "ran while the engine was held");
            assertEquals(HealthCheckResponse.ServingStatus.NOT_SERVING, HealthGrpc.newBlockingStub(ch)
                    .check(HealthCheckRequest.newBuilder().setService(CoordinatorServer.SERVICE).build()).getStatus());
            release.countDown();
            assertTrue(s.awaitWarmUp(Duration.ofSeconds(60)));
            awaitHealth(ch, HealthCheckResponse.ServingStatus.SERVING);
            assertFalse(api.stats(StatsRequest.getDefaultInstance()).getWarmingUp());
        } finally {
            ch.shutdownNow();
            s.close();
        }
    }

    @Test
    void reflectionDescribesTheApi() throws Exception {
        CompletableFuture<List<ServerReflectionResponse>> done = new CompletableFuture<>();
        List<ServerReflectionResponse> got = new ArrayList<>();
        StreamObserver<ServerReflectionRequest> req = ServerReflectionGrpc.newStub(channel).serverReflectionInfo(
                new StreamObserver<>() {
                    public void onNext(ServerReflectionResponse r) { got.add(r); }
                    public void onError(Throwable t) { done.completeExceptionally(t); }
                    public void onCompleted() { done.complete(got); }
                });
        req.onNext(ServerReflectionRequest.newBuilder().setListServices("").build());
        req.onNext(ServerReflectionRequest.newBuilder().setFileContainingSymbol(CoordinatorServer.SERVICE).build());
        req.onCompleted();
        List<ServerReflectionResponse> r = done.get(10, TimeUnit.SECONDS);
        List<String> services = r.get(0).getListServicesResponse().getServiceList().stream().map(s -> s.getName()).toList();
        assertTrue(services.contains(CoordinatorServer.SERVICE), services.toString());
        assertTrue(services.contains("grpc.health.v1.Health"), services.toString());
        assertTrue(r.get(1).getFileDescriptorResponse().getFileDescriptorProtoCount() > 0, r.get(1).toString());
    }

    @Test
    void deadlineEndsTheStreamAndFreesTheSlot() throws Exception {
        SamplingParams endless = SamplingParams.newBuilder().setMaxTokens(19_000).setIgnoreEos(true).build();
        Iterator<GenerateResponse> it = api.withDeadlineAfter(300, TimeUnit.MILLISECONDS).generate(ids(endless, 1, 2, 3));
        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> it.forEachRemaining(r -> { }));
        assertEquals(Status.Code.DEADLINE_EXCEEDED, e.getStatus().getCode());
        awaitIdle();
    }

    @Test
    void clientCancellationFreesTheSlot() throws Exception {
        SamplingParams endless = SamplingParams.newBuilder().setMaxTokens(19_000).setIgnoreEos(true).build();
        try (Context.CancellableContext ctx = Context.current().withCancellation()) {
            Iterator<GenerateResponse> it = ctx.call(() -> api.generate(ids(endless, 4, 5, 6)));
            assertEquals(1, it.next().getTokenIdsCount());
            assertEquals(1, server.scheduler().running());
            ctx.cancel(null);
        }
        awaitIdle();
    }

    @Test
    void fullQueueIsResourceExhausted() throws Exception {
        // max-batch 4, max-queue 2: four running, two waiting, the seventh is refused.
        SamplingParams endless = SamplingParams.newBuilder().setMaxTokens(19_000).setIgnoreEos(true).build();
        try (Context.CancellableContext ctx = Context.current().withCancellation()) {
            List<Iterator<GenerateResponse>> running = new ArrayList<>();
            for (int i = 0; i < 4; i++) {
                Iterator<GenerateResponse> it = ctx.call(() -> api.generate(ids(endless, 7, 8)));
                it.next(); // admitted
                running.add(it);
            }
            var async = GenerationServiceGrpc.newStub(channel);
            for (int i = 0; i < 2; i++) {
                ctx.run(() -> async.generate(ids(endless, 9), new io.grpc.stub.StreamObserver<>() {
                    public void onNext(GenerateResponse r) { }
                    public void onError(Throwable t) { }
                    public void onCompleted() { }
                }));
            }
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (server.scheduler().waiting() < 2 && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertTrue(server.scheduler().waiting() >= 2, "the queue did not fill: " + server.scheduler().waiting());
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class,
                    () -> collect(ids(SamplingParams.newBuilder().setMaxTokens(1).build(), 3)));
            assertEquals(Status.Code.RESOURCE_EXHAUSTED, e.getStatus().getCode());
            assertTrue(e.getStatus().getDescription().contains("queue is full"), e.getStatus().getDescription());
            ctx.cancel(null);
        }
        awaitIdle();
    }

    private static void awaitIdle() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while ((server.scheduler().running() > 0 || server.scheduler().waiting() > 0) && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(0, server.scheduler().running(), "batch slots still held");
        assertEquals(0, server.scheduler().waiting(), "requests still queued");
    }

    /** What runs against {@link #withOneExpertWorker}'s coordinator. */
    private interface RemoteBody {
        void run(ExpertWorker worker, RemoteExpertBackend backend, ManagedChannel channel) throws Exception;
    }

    /**
     * Runs {@code body} against a coordinator of tiny-v3 whose routed experts are on one expert
     * worker serving {@code shard}, found through a real ZooKeeper.
     */
    private static void withOneExpertWorker(ExpertShard shard, RemoteExperts.Options options, RemoteBody body)
            throws Exception {
        Path dir = TestData.model("tiny-v3");
        ModelConfig cfg = ModelConfig.load(dir.resolve(ModelConfig.FILE_NAME));
        CheckpointFingerprint fp = CheckpointFingerprint.of(dir);
        int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
        try (TestingServer zk = new TestingServer(true);
             ExpertWorker worker = ExpertWorker.start(shard, fp, moeLayers,
                     new ExpertWorker.Settings("127.0.0.1", 0, zk.getConnectString(), "t", null, 64, 10_000, 200, 0));
             RemoteExpertBackend backend = RemoteExpertBackend.connect(zk.getConnectString(), "t", fp, cfg, options)) {
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (backend.workers().isEmpty()) {
                assertTrue(System.nanoTime() < until, "the worker never registered");
                Thread.sleep(20);
            }
            try (CoordinatorServer remote = CoordinatorServer.start(ServedModel.open(dir, backend.experts(), 0), backend,
                    SchedulerOptions.defaults(), "127.0.0.1", 0)) {
                ManagedChannel ch = channel(remote.target());
                try {
                    body.run(worker, backend, ch);
                } finally {
                    ch.shutdownNow();
                }
            }
        }
    }

    @Test
    void missingExpertsAreUnavailableNamingThem() throws Exception {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3"))) {
            withOneExpertWorker(CheckpointShard.load(c, ExpertRanges.parse("0-127", 256)), RemoteExperts.Options.defaults(),
                    (half, backend, ch) -> {
                        assertEquals("128-255", backend.missingExperts());
                        var stub = GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(10, TimeUnit.SECONDS);
                        StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> stub.generate(
                                ids(SamplingParams.getDefaultInstance(), 1, 2, 3)).forEachRemaining(r -> { }));
                        assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
                        assertTrue(e.getStatus().getDescription().contains("128-255"), e.getStatus().getDescription());
                        ModelInfoResponse info = stub.modelInfo(ModelInfoRequest.getDefaultInstance());
                        assertEquals(1, info.getExpertWorkersCount());
                        assertEquals(128, info.getExpertWorkers(0).getExpertsCount());
                    });
        }
    }

    /** Completes with the call's status once it ends (OK when it completed). */
    private static StreamObserver<GenerateResponse> ending(CompletableFuture<Status> status) {
        return new StreamObserver<>() {
            public void onNext(GenerateResponse r) { }
            public void onError(Throwable t) { status.complete(Status.fromThrowable(t)); }
            public void onCompleted() { status.complete(Status.OK); }
        };
    }

    /** Follows the server's health (grpc.health.v1 Watch) until it reports {@code wanted}. */
    private static void awaitHealth(ManagedChannel ch, HealthCheckResponse.ServingStatus wanted) {
        awaitHealth(ch, CoordinatorServer.SERVICE, wanted);
    }

    private static void awaitHealth(ManagedChannel ch, String service, HealthCheckResponse.ServingStatus wanted) {
        Iterator<HealthCheckResponse> health = HealthGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
                .watch(HealthCheckRequest.newBuilder().setService(service).build());
        HealthCheckResponse.ServingStatus now;
        do {
            now = health.next().getStatus(); // blocks until the status changes
        } while (now != wanted);
    }

    /**
     * A server whose KV cache budget holds 100 positions: a request whose prompt + max tokens could
     * never fit is INVALID_ARGUMENT naming the flag (generate and logits alike); one that fits runs, and
     * one without max_tokens runs to the 100th position.
     */
    /**
     * A Logits answer holds every step's logits in the heap: one that would not fit the coordinator's
     * share for it is refused up front (it took the whole engine down with an OutOfMemoryError).
     */
    @Test
    void logitsTooLargeToHoldAreInvalidNamingSteps() throws Exception {
        ServedModel model = ServedModel.open(TestData.model("tiny-v3"), null, 40_000);
        int steps = 33_000; // 33,001 x 2,048 floats: 258 MiB, over the 256 MiB cap
        try (CoordinatorServer big = CoordinatorServer.start(model, ExpertBackend.local(), new SchedulerOptions(2, 2, 32),
                "127.0.0.1", 0)) {
            ManagedChannel ch = channel(big.target());
            try {
                StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> GenerationServiceGrpc
                        .newBlockingStub(ch).logits(LogitsRequest.newBuilder().addPromptTokenIds(5).setSteps(steps).build()));
                assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
                assertEquals("steps", FieldViolation.of(e).getField());
                assertTrue(e.getStatus().getDescription().contains("MiB of logits"), e.getStatus().getDescription());
                assertEquals(HealthCheckResponse.ServingStatus.SERVING, HealthGrpc.newBlockingStub(ch)
                        .check(HealthCheckRequest.newBuilder().setService(CoordinatorServer.SERVICE).build()).getStatus());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /**
     * A client that stops reading its stream (manual flow control, never asking for more) would have
     * its messages pile up in the server: past the stall limit its generation stops and frees its slot.
     */
    @Test
    void aClientThatStopsReadingHasItsGenerationStopped() throws Exception {
        ServedModel model = ServedModel.open(TestData.model("tiny-v3"), null, 160_000);
        dev.epic.coordinator.scheduler.Scheduler scheduler = new dev.epic.coordinator.scheduler.Scheduler(
                model.transformer(), new SchedulerOptions(2, 2, 32), () -> null).start();
        io.grpc.Server server = io.grpc.netty.NettyServerBuilder.forAddress(new java.net.InetSocketAddress("127.0.0.1", 0))
                .addService(new GenerationServiceImpl(model, scheduler, ExpertBackend.local(), dev.epic.coordinator.metrics
                        .ServingMetrics.bind(new io.micrometer.core.instrument.simple.SimpleMeterRegistry(), scheduler),
                        Duration.ofSeconds(1)))
                .build().start();
        // A small receive window: the server's buffer for the stream fills after a few messages.
        ManagedChannel ch = NettyChannelBuilder.forTarget("127.0.0.1:" + server.getPort()).usePlaintext()
                .flowControlWindow(16 << 10).build();
        try {
            java.util.concurrent.CountDownLatch first = new java.util.concurrent.CountDownLatch(1);
            GenerationServiceGrpc.newStub(ch).generate(ids(SamplingParams.newBuilder().setMaxTokens(150_000)
                    .setIgnoreEos(true).setLogprobs(20).build(), 3, 4, 5), new io.grpc.stub.ClientResponseObserver<
                    GenerateRequest, GenerateResponse>() {
                @Override
                public void beforeStart(io.grpc.stub.ClientCallStreamObserver<GenerateRequest> stream) {
                    stream.disableAutoRequestWithInitial(1); // one message, then nothing
                }

                @Override
                public void onNext(GenerateResponse r) {
                    first.countDown();
                }

                @Override
                public void onError(Throwable t) { }

                @Override
                public void onCompleted() { }
            });
            assertTrue(first.await(30, TimeUnit.SECONDS));
            // 150,000 tokens would run for minutes: the slot is freed once the stall is seen.
            long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (scheduler.running() + scheduler.waiting() > 0 && System.nanoTime() < until) {
                Thread.sleep(50);
            }
            assertEquals(0, scheduler.running() + scheduler.waiting(), "the stalled stream still generates");
        } finally {
            ch.shutdownNow();
            server.shutdownNow();
            scheduler.close();
        }
    }

    /** uint32 fields past a Java int are refused with the value sent, not a clamped one. */
    @Test
    void hugeUnsignedSamplingValuesAreRefusedAsSent() {
        for (SamplingParams p : List.of(SamplingParams.newBuilder().setMaxTokens(-1).build(),
                SamplingParams.newBuilder().addStopTokenIds(-1).build(),
                SamplingParams.newBuilder().putLogitBias(-1, 1f).build(),
                SamplingParams.newBuilder().setLogprobs(-1).build())) {
            String d = invalid(ids(p, 3));
            assertTrue(d.contains("4294967295 is too large"), d);
        }
        // Out of the vocabulary, as logit_bias: it could never end the answer.
        String outside = invalid(ids(SamplingParams.newBuilder().addStopTokenIds(200_000).build(), 3));
        assertTrue(outside.contains("sampling.stop_token_ids: token id 200000 is outside the vocabulary"), outside);
        // tiny-v3's logits are 2,048 wide, its tokenizer's 128,815: an id between is in neither's reach.
        String past = invalid(ids(SamplingParams.newBuilder().putLogitBias(5000, 100f).build(), 3));
        assertTrue(past.contains("sampling.logit_bias: token id 5000 is outside the vocabulary [0, 2048)"), past);
        String stop = invalid(ids(SamplingParams.newBuilder().addStopTokenIds(2048).build(), 3));
        assertTrue(stop.contains("sampling.stop_token_ids: token id 2048 is outside the vocabulary [0, 2048)"), stop);
    }

    @Test
    void aRequestBeyondTheKvCacheBudgetIsInvalid() throws Exception {
        Path dir = TestData.model("tiny-v3");
        ServedModel model = ServedModel.open(dir, null, MAX_CONTEXT);
        long perPosition = HeapKvCache.bytesPerPosition(model.config());
        try (CoordinatorServer small = CoordinatorServer.start(model, ExpertBackend.local(),
                new SchedulerOptions(2, 2, 32).withKvCacheBytes(100 * perPosition), "127.0.0.1", 0)) {
            ManagedChannel ch = channel(small.target());
            try {
                var stub = GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(60, TimeUnit.SECONDS);
                StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> stub.generate(
                        ids(SamplingParams.newBuilder().setMaxTokens(98).setIgnoreEos(true).build(), 1, 2, 3))
                        .forEachRemaining(r -> { }));
                assertEquals(Status.Code.INVALID_ARGUMENT, e.getStatus().getCode(), e.toString());
                assertTrue(e.getStatus().getDescription().contains("101 positions")
                        && e.getStatus().getDescription().contains("--kv-cache-mb"), e.getStatus().getDescription());
                assertEquals("sampling.max_tokens", FieldViolation.of(e).getField(), "the field at fault");
                StatusRuntimeException prompt = assertThrows(StatusRuntimeException.class, () -> stub.generate(
                        ids(SamplingParams.newBuilder().setMaxTokens(1).build(), new int[100])).forEachRemaining(r -> { }));
                assertEquals("prompt", FieldViolation.of(prompt).getField(), prompt.toString());
                StatusRuntimeException steps = assertThrows(StatusRuntimeException.class, () -> stub.logits(
                        LogitsRequest.newBuilder().addPromptTokenIds(5).addPromptTokenIds(6).setSteps(99).build()));
                assertEquals(Status.Code.INVALID_ARGUMENT, steps.getStatus().getCode());
                assertEquals("steps", FieldViolation.of(steps).getField(), steps.toString());
                List<GenerateResponse> fits = new ArrayList<>();
                stub.generate(ids(SamplingParams.newBuilder().setMaxTokens(97).setIgnoreEos(true).build(), 1, 2, 3))
                        .forEachRemaining(fits::add);
                assertEquals(97, fits.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum());
                // Without max_tokens a request runs to the end of the longest sequence the budget holds.
                List<GenerateResponse> open = new ArrayList<>();
                stub.generate(ids(SamplingParams.newBuilder().setIgnoreEos(true).build(), 1, 2, 3, 4))
                        .forEachRemaining(open::add);
                assertEquals(96, open.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum());
                assertEquals(FinishReason.LENGTH, open.getLast().getFinishReason());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /**
     * Two requests that cannot both grow in KV cache for 40 positions run to their end through the
     * service, one of them preempted and recomputed on the way; the Stats RPC counts it.
     */
    @Test
    void aPreemptedRequestEndsWholeAndStatsCountsIt() throws Exception {
        Path dir = TestData.model("tiny-v3");
        ServedModel served = ServedModel.open(dir, null, MAX_CONTEXT);
        long perPosition = HeapKvCache.bytesPerPosition(served.config());
        try (CoordinatorServer small = CoordinatorServer.start(served, ExpertBackend.local(),
                new SchedulerOptions(4, 4, 32).withKvCacheBytes(40 * perPosition), "127.0.0.1", 0)) {
            ManagedChannel ch = channel(small.target());
            try {
                // Two samples of one request join the batch in the same step, so they grow together.
                List<GenerateResponse> r = collect(GenerationServiceGrpc.newStub(ch), ids(SamplingParams.newBuilder()
                        .setMaxTokens(30).setIgnoreEos(true).setTemperature(0).setN(2).build(), 1, 2, 3))
                        .get(60, TimeUnit.SECONDS);
                for (int sample = 0; sample < 2; sample++) {
                    int k = sample;
                    List<GenerateResponse> mine = r.stream().filter(x -> x.getIndex() == k).toList();
                    assertEquals(30, mine.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum(), "sample " + k);
                    assertEquals(FinishReason.LENGTH, mine.getLast().getFinishReason());
                }
                // Greedy: the recomputed sample draws what the other decoded.
                assertEquals(r.stream().filter(x -> x.getIndex() == 0).flatMap(x -> x.getTokenIdsList().stream()).toList(),
                        r.stream().filter(x -> x.getIndex() == 1).flatMap(x -> x.getTokenIdsList().stream()).toList());
                assertEquals(1, GenerationServiceGrpc.newBlockingStub(ch)
                        .stats(dev.epic.proto.StatsRequest.getDefaultInstance()).getPreemptions());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /**
     * A graceful stop: while draining, health fails (NOT_SERVING or no new calls) and a new request is UNAVAILABLE, and the
     * running one finishes its answer (finish_reason LENGTH, every token); an endless one is cancelled
     * when the drain time is over.
     */
    @Test
    void aDrainLetsRunningRequestsFinishAndRefusesNewOnes() throws Exception {
        Path dir = TestData.model("tiny-v3");
        try (CoordinatorServer draining = CoordinatorServer.start(ServedModel.open(dir, null, MAX_CONTEXT),
                ExpertBackend.local(), new SchedulerOptions(2, 2, 32), "127.0.0.1", 0)) {
            ManagedChannel ch = channel(draining.target());
            try {
                var async = GenerationServiceGrpc.newStub(ch);
                CompletableFuture<List<GenerateResponse>> finite = collect(async,
                        ids(SamplingParams.newBuilder().setMaxTokens(600).setIgnoreEos(true).build(), 1, 2, 3));
                CompletableFuture<List<GenerateResponse>> endless = collect(async,
                        ids(SamplingParams.newBuilder().setMaxTokens(19_000).setIgnoreEos(true).build(), 4, 5));
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                while (draining.scheduler().running() < 2 && System.nanoTime() < deadline) {
                    Thread.sleep(5);
                }
                CompletableFuture<Boolean> drained = CompletableFuture.supplyAsync(
                        () -> draining.drain(java.time.Duration.ofSeconds(10)));
                Status.Code refused = null; // before the drain starts, a new request waits (and may time out) or runs
                while (refused != Status.Code.UNAVAILABLE && System.nanoTime() < deadline) {
                    try {
                        GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(300, TimeUnit.MILLISECONDS)
                                .generate(ids(SamplingParams.newBuilder().setMaxTokens(1).build(), 7))
                                .forEachRemaining(r -> { });
                        refused = Status.Code.OK;
                    } catch (StatusRuntimeException e) {
                        refused = e.getStatus().getCode();
                    }
                }
                assertEquals(Status.Code.UNAVAILABLE, refused, "a new request while draining");
                try { // the server takes no new calls, so the probe fails, or it answers NOT_SERVING
                    assertEquals(HealthCheckResponse.ServingStatus.NOT_SERVING, HealthGrpc.newBlockingStub(ch)
                            .check(HealthCheckRequest.newBuilder().setService(CoordinatorServer.SERVICE).build())
                            .getStatus());
                } catch (StatusRuntimeException e) {
                    assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
                }
                List<GenerateResponse> done = finite.get(30, TimeUnit.SECONDS);
                assertEquals(600, done.stream().mapToInt(GenerateResponse::getTokenIdsCount).sum());
                assertEquals(FinishReason.LENGTH, done.getLast().getFinishReason());
                assertFalse(drained.get(30, TimeUnit.SECONDS), "the endless request outlived the drain");
                draining.close();
                List<GenerateResponse> cut = endless.get(30, TimeUnit.SECONDS);
                assertEquals(FinishReason.CANCELLED, cut.getLast().getFinishReason());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /** Every response of one Generate call, completed when the stream ends (exceptionally on an error). */
    private static CompletableFuture<List<GenerateResponse>> collect(GenerationServiceGrpc.GenerationServiceStub stub,
            GenerateRequest req) {
        CompletableFuture<List<GenerateResponse>> f = new CompletableFuture<>();
        List<GenerateResponse> all = java.util.Collections.synchronizedList(new ArrayList<>());
        stub.generate(req, new StreamObserver<>() {
            @Override
            public void onNext(GenerateResponse r) {
                all.add(r);
            }

            @Override
            public void onError(Throwable t) {
                f.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {
                f.complete(all);
            }
        });
        return f;
    }

    /**
     * An Error that kills the engine thread: the running and the waiting request end with
     * UNAVAILABLE, later ones are refused with UNAVAILABLE, and health turns NOT_SERVING, liveness too
     * (a restart is what mends it).
     */
    @Test
    void aDeadEngineIsUnavailableAndNotServing() throws Exception {
        Path dir = TestData.model("tiny-v3");
        try (Checkpoint c = Checkpoint.open(dir)) {
            FailingExperts experts = new FailingExperts(LocalExperts.all(c.config(), c));
            try (CoordinatorServer broken = CoordinatorServer.start(ServedModel.open(dir, experts, MAX_CONTEXT),
                    ExpertBackend.local(), new SchedulerOptions(1, 1, 32), "127.0.0.1", 0)) {
                ManagedChannel ch = channel(broken.target());
                try {
                    var stub = GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(60, TimeUnit.SECONDS);
                    SamplingParams endless = SamplingParams.newBuilder().setMaxTokens(19_000).setIgnoreEos(true).build();
                    Iterator<GenerateResponse> running = stub.generate(ids(endless, 1, 2, 3));
                    running.next();
                    assertEquals(HealthCheckResponse.ServingStatus.SERVING, HealthGrpc.newBlockingStub(ch).check(
                            HealthCheckRequest.newBuilder().setService(WorkerServer.LIVENESS).build()).getStatus());
                    CompletableFuture<Status> waiting = new CompletableFuture<>();
                    GenerationServiceGrpc.newStub(ch).generate(ids(endless, 4, 5), ending(waiting));
                    long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
                    while (broken.scheduler().waiting() < 1) {
                        assertTrue(System.nanoTime() < until, "the second request was never queued");
                        Thread.sleep(10);
                    }
                    experts.failNext(new InternalError("injected: the engine thread dies"));
                    assertEquals(Status.Code.UNAVAILABLE, assertThrows(StatusRuntimeException.class,
                            () -> running.forEachRemaining(r -> { })).getStatus().getCode());
                    assertEquals(Status.Code.UNAVAILABLE, waiting.get(30, TimeUnit.SECONDS).getCode());
                    StatusRuntimeException refused = assertThrows(StatusRuntimeException.class,
                            () -> stub.generate(ids(endless, 6)).forEachRemaining(r -> { }));
                    assertEquals(Status.Code.UNAVAILABLE, refused.getStatus().getCode());
                    assertTrue(refused.getStatus().getDescription().contains("engine failed"),
                            refused.getStatus().getDescription());
                    assertEquals(Status.Code.UNAVAILABLE,
                            codeOf(() -> stub.logits(LogitsRequest.newBuilder().addPromptTokenIds(5).build())));
                    awaitHealth(ch, HealthCheckResponse.ServingStatus.NOT_SERVING);
                    awaitHealth(ch, WorkerServer.LIVENESS, HealthCheckResponse.ServingStatus.NOT_SERVING);
                } finally {
                    ch.shutdownNow();
                }
            }
        }
    }

    /**
     * The only worker misses one deadline (it stalls, as in a long GC pause): the request it was
     * serving fails with UNAVAILABLE and its experts count as missing until it answers the
     * coordinator's probe; then requests are served again, the worker neither restarted nor re-registered.
     */
    @Test
    void aWorkerThatMissedADeadlineServesAgainWithoutRestarting() throws Exception {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3"))) {
            StallingShard shard = new StallingShard(CheckpointShard.load(c, ExpertRanges.parse("0-255", 256)));
            withOneExpertWorker(shard, RemoteExperts.Options.defaults().withDeadline(Duration.ofSeconds(2)),
                    (worker, backend, ch) -> {
                        SamplingParams two = SamplingParams.newBuilder().setTemperature(0).setMaxTokens(2)
                                .setIgnoreEos(true).build();
                        CompletableFuture<Status> stalled = new CompletableFuture<>();
                        GenerationServiceGrpc.newStub(ch).generate(ids(two, 1, 2, 3), ending(stalled));
                        // The stall holds an event loop, which this JVM's servers and channels share: until it
                        // is released, the test waits on no gRPC call, only on the coordinator giving up.
                        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                        while (!backend.missingExperts().equals("0-255")) {
                            assertTrue(System.nanoTime() < until, "the stalled worker was never given up on");
                            Thread.sleep(20);
                        }
                        shard.release();
                        assertEquals(Status.Code.UNAVAILABLE, stalled.get(30, TimeUnit.SECONDS).getCode());
                        assertTrue(backend.awaitCoverage(Duration.ofSeconds(30)), "missing " + backend.missingExperts());
                        List<GenerateResponse> served = new ArrayList<>();
                        GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS)
                                .generate(ids(two, 1, 2, 3)).forEachRemaining(served::add);
                        assertEquals(FinishReason.LENGTH, served.getLast().getFinishReason());
                        assertEquals(List.of(worker.workerId()),
                                backend.workers().stream().map(w -> w.getWorkerId()).toList());
                    });
        }
    }

    /**
     * A grammar found too ambiguous mid-answer (its open parses pass the cap) fails its request as
     * INVALID_ARGUMENT naming response_format, the client's grammar, not as an internal error.
     */
    @Test
    void aGrammarTooAmbiguousIsTheRequestsFault() {
        dev.epic.text.constrain.GrammarCursor c = dev.epic.text.constrain.Grammar
                .compile("root ::= \"x\" root \"y\" | \"x\" root \"z\" | \"\"").start();
        RuntimeException e = assertThrows(RuntimeException.class, () -> c.step("x".repeat(20).getBytes()));
        io.grpc.StatusRuntimeException s = GenerationServiceImpl.toStatus(e);
        assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, s.getStatus().getCode());
        assertTrue(s.getStatus().getDescription().contains("too ambiguous"), s.getStatus().getDescription());
        assertTrue(s.getStatus().getDescription().contains("response_format"), s.getStatus().getDescription());
    }
}
