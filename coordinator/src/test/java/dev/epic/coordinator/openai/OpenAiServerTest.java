package dev.epic.coordinator.openai;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.synth.Presets;
import dev.epic.model.synth.SyntheticCheckpoint;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.Messages;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.TokenIds;
import dev.epic.proto.TokenLogprob;
import dev.epic.text.tokenizer.Tokenizer;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The OpenAI-compatible API over real HTTP and real gRPC on loopback, engine in process: each
 * answer is checked against the gRPC API's answer to the same request. The model is tiny-v3's architecture with
 * the real 129,280-token vocabulary (synthesised here), so chat templates work.
 */
class OpenAiServerTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final int MAX_CONTEXT = 20_000;
    private static CoordinatorServer coordinator;
    private static OpenAiServer server;
    private static ManagedChannel channel;
    private static GenerationServiceGrpc.GenerationServiceBlockingStub grpc;
    private static HttpClient http;
    private static String model;

    /** tiny-v3 with DeepSeek-V3's vocabulary, so chat prompts and their special tokens fit. */
    @TempDir
    static Path dir;

    @BeforeAll
    static void start() throws Exception {
        ModelConfig t = Presets.tinyV3();
        ModelConfig v3Vocabulary = new ModelConfig(t.hiddenSize(), t.intermediateSize(), t.moeIntermediateSize(),
                t.numHiddenLayers(), t.numAttentionHeads(), t.qLoraRank(), t.kvLoraRank(), t.qkNopeHeadDim(),
                t.qkRopeHeadDim(), t.vHeadDim(), t.nRoutedExperts(), t.nSharedExperts(), t.numExpertsPerTok(), t.nGroup(),
                t.topkGroup(), t.routedScalingFactor(), t.scoringFunc(), t.topkMethod(), t.normTopkProb(),
                t.firstKDenseReplace(), t.moeLayerFreq(), t.rmsNormEps(), t.ropeTheta(), t.ropeScaling(),
                t.maxPositionEmbeddings(), 129_280, t.bosTokenId(), t.eosTokenId(), t.tieWordEmbeddings(),
                t.quantization(), 0);
        SyntheticCheckpoint.write(v3Vocabulary, dir, new SyntheticCheckpoint.Options(SyntheticCheckpoint.WeightDtype.BF16,
                7, SyntheticCheckpoint.Options.DEFAULT_SHARD_BYTES), (done, total) -> {});
        ServedModel served = ServedModel.open(dir, null, MAX_CONTEXT);
        // Two running, two waiting: small enough for the overload test.
        coordinator = CoordinatorServer.start(served, ExpertBackend.local(), new SchedulerOptions(2, 2, 32, 16L << 20),
                "127.0.0.1", 0);
        server = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, null);
        channel = NettyChannelBuilder.forTarget(coordinator.target()).usePlaintext().build();
        grpc = GenerationServiceGrpc.newBlockingStub(channel);
        http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        model = grpc.modelInfo(ModelInfoRequest.getDefaultInstance()).getFingerprint().getName();
    }

    @AfterAll
    static void stop() throws Exception {
        server.close();
        channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        coordinator.close();
        http.close();
    }

    private static URI uri(String path) {
        return URI.create("http://127.0.0.1:" + server.port() + path);
    }

    private static HttpResponse<String> post(String path, String body) throws Exception {
        return http.send(HttpRequest.newBuilder(uri(path)).POST(HttpRequest.BodyPublishers.ofString(body))
                .header("Content-Type", "application/json").build(), HttpResponse.BodyHandlers.ofString());
    }

    private static JsonNode ok(HttpResponse<String> r) throws Exception {
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body());
    }

    private static List<GenerateResponse> generate(GenerateRequest req) {
        List<GenerateResponse> out = new ArrayList<>();
        grpc.generate(req).forEachRemaining(out::add);
        return out;
    }

    private static Messages chat() {
        return Messages.newBuilder()
                .addMessages(ChatMessage.newBuilder().setRole("system").setContent("Be brief."))
                .addMessages(ChatMessage.newBuilder().setRole("user").setContent("Hello there")).build();
    }

    private static final String CHAT_MESSAGES = """
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]""";

    @Test
    void chatCompletionIsTheGrpcAnswer() throws Exception {
        JsonNode a = ok(post("/v1/chat/completions", "{\"model\": \"" + model + "\", " + CHAT_MESSAGES
                + ", \"temperature\": 0, \"max_tokens\": 9, \"ignore_eos\": true}"));
        List<GenerateResponse> ref = generate(GenerateRequest.newBuilder().setChat(chat())
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(9).setIgnoreEos(true)).build());
        StringBuilder text = new StringBuilder(), reasoning = new StringBuilder();
        ref.forEach(r -> {
            text.append(r.getText());
            reasoning.append(r.getReasoningText());
        });
        assertEquals("chat.completion", a.get("object").asText());
        assertTrue(a.get("id").asText().startsWith("chatcmpl-"));
        assertEquals(model, a.get("model").asText());
        String fingerprint = grpc.modelInfo(ModelInfoRequest.getDefaultInstance()).getSystemFingerprint();
        assertTrue(fingerprint.matches("fp_[0-9a-f]{12}"), fingerprint);
        assertEquals(fingerprint, a.get("system_fingerprint").asText());
        JsonNode choice = a.get("choices").get(0);
        assertEquals("assistant", choice.get("message").get("role").asText());
        assertEquals(text.toString(), choice.get("message").get("content").asText());
        assertEquals(reasoning.toString(), choice.get("message").path("reasoning_content").asText(""));
        assertFalse(text.toString().isEmpty() && reasoning.toString().isEmpty(), "the model said nothing");
        assertEquals("length", choice.get("finish_reason").asText());
        JsonNode usage = a.get("usage");
        assertEquals(ref.getLast().getUsage().getPromptTokens(), usage.get("prompt_tokens").asInt());
        assertEquals(9, usage.get("completion_tokens").asInt());
        assertEquals(usage.get("prompt_tokens").asInt() + 9, usage.get("total_tokens").asInt());
        assertEquals(ref.getLast().getUsage().getReasoningTokens(),
                usage.get("completion_tokens_details").get("reasoning_tokens").asInt());
    }

    /** Server-sent events: the role first, then deltas, a usage chunk, and [DONE]; the same text as a whole answer. */
    @Test
    void streamedChunksAddUpToTheWholeAnswer() throws Exception {
        String request = "{" + CHAT_MESSAGES + ", \"n\": 2, \"seed\": 11, \"temperature\": 0.9, \"max_tokens\": 7, "
                + "\"ignore_eos\": true, \"chat_template_kwargs\": {\"enable_thinking\": false}";
        HttpResponse<String> r = post("/v1/chat/completions",
                request + ", \"stream\": true, \"stream_options\": {\"include_usage\": true}}");
        assertEquals(200, r.statusCode(), r.body());
        assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/event-stream"));
        List<String> events = events(r.body());
        assertEquals("[DONE]", events.getLast());
        StringBuilder[] text = {new StringBuilder(), new StringBuilder()};
        String[] finish = new String[2];
        boolean[] roleFirst = new boolean[2];
        for (String e : events.subList(0, events.size() - 2)) {
            JsonNode chunk = JSON.readTree(e);
            assertEquals("chat.completion.chunk", chunk.get("object").asText());
            assertTrue(chunk.get("usage").isNull(), "usage only in the last chunk");
            assertTrue(chunk.get("system_fingerprint").asText().matches("fp_[0-9a-f]{12}"), e);
            JsonNode c = chunk.get("choices").get(0);
            int i = c.get("index").asInt();
            if (c.get("delta").has("role")) {
                assertEquals(0, text[i].length(), "the role comes first");
                roleFirst[i] = true;
            }
            text[i].append(c.get("delta").path("content").asText(""));
            if (!c.get("finish_reason").isNull()) {
                finish[i] = c.get("finish_reason").asText();
            }
        }
        JsonNode usage = JSON.readTree(events.get(events.size() - 2));
        assertTrue(usage.get("choices").isEmpty());
        assertEquals(14, usage.get("usage").get("completion_tokens").asInt());
        JsonNode whole = ok(post("/v1/chat/completions", request + "}"));
        for (int i = 0; i < 2; i++) {
            assertTrue(roleFirst[i]);
            assertEquals("length", finish[i]);
            JsonNode choice = whole.get("choices").get(i);
            assertEquals(choice.get("message").get("content").asText(), text[i].toString(), "choice " + i);
        }
        assertEquals(usage.get("usage"), whole.get("usage"));
    }

    /**
     * vLLM's continuous_usage_stats (with include_usage): every chunk carries its choice's usage so far, the
     * prompt's tokens and the completion tokens up to it, ending at the final usage; without include_usage
     * it is ignored, as in vLLM.
     */
    @Test
    void continuousUsageStatsCountEveryChunk() throws Exception {
        String request = "{" + CHAT_MESSAGES + ", \"temperature\": 0, \"max_tokens\": 5, \"ignore_eos\": true, "
                + "\"stream\": true, \"stream_options\": {\"include_usage\": true, \"continuous_usage_stats\": true}}";
        HttpResponse<String> r = post("/v1/chat/completions", request);
        assertEquals(200, r.statusCode(), r.body());
        List<String> events = events(r.body());
        JsonNode last = JSON.readTree(events.get(events.size() - 2)); // the usage chunk, before [DONE]
        assertTrue(last.get("choices").isEmpty());
        int prompt = last.get("usage").get("prompt_tokens").asInt();
        int seen = 0;
        int before = -1;
        for (String e : events.subList(0, events.size() - 2)) {
            JsonNode chunk = JSON.readTree(e);
            JsonNode usage = chunk.get("usage");
            assertTrue(usage != null && usage.isObject(), e);
            assertEquals(prompt, usage.get("prompt_tokens").asInt(), e);
            int done = usage.get("completion_tokens").asInt();
            assertTrue(done >= before, e);
            assertEquals(prompt + done, usage.get("total_tokens").asInt(), e);
            before = done;
            seen++;
        }
        assertTrue(seen >= 5, "chunks: " + seen);
        assertEquals(5, before, "the last chunk's count is the whole completion");
        assertEquals(5, last.get("usage").get("completion_tokens").asInt());
        // Without include_usage there is no usage to continue (vLLM ignores the switch then).
        List<String> plain = events(post("/v1/chat/completions", request.replace("\"include_usage\": true, ", "")).body());
        for (String e : plain.subList(0, plain.size() - 1)) {
            assertFalse(JSON.readTree(e).has("usage") && JSON.readTree(e).get("usage").isObject(), e);
        }
    }

    private static List<String> events(String body) {
        List<String> out = new ArrayList<>();
        for (String block : body.split("\n\n")) {
            if (!block.isBlank()) {
                assertTrue(block.startsWith("data: "), block);
                out.add(block.substring("data: ".length()));
            }
        }
        return out;
    }

    @Test
    void logprobsCarryEachTokensTextAndBytes() throws Exception {
        JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES
                + ", \"temperature\": 0, \"max_tokens\": 4, \"ignore_eos\": true, \"logprobs\": true, \"top_logprobs\": 2}"));
        List<GenerateResponse> ref = generate(GenerateRequest.newBuilder().setChat(chat())
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(4).setIgnoreEos(true).setLogprobs(2))
                .build());
        List<TokenLogprob> expected = ref.stream().flatMap(r -> r.getLogprobsList().stream()).toList();
        JsonNode content = a.get("choices").get(0).get("logprobs").get("content");
        assertEquals(4, content.size());
        Tokenizer tokenizer = Tokenizer.fromModelDir(dir);
        for (int i = 0; i < 4; i++) {
            TokenLogprob l = expected.get(i);
            JsonNode e = content.get(i);
            // The gRPC answer's bytes are the tokenizer's; the HTTP answer carries them on.
            assertArrayEquals(tokenizer.tokenBytes(l.getTokenId()), l.getToken().toByteArray());
            assertArrayEquals(l.getToken().toByteArray(), bytes(e.get("bytes")));
            assertEquals(l.getToken().toStringUtf8(), e.get("token").asText());
            assertEquals(l.getLogprob(), e.get("logprob").floatValue());
            assertEquals(2, e.get("top_logprobs").size());
            for (int k = 0; k < 2; k++) {
                assertArrayEquals(tokenizer.tokenBytes(l.getTop(k).getTokenId()), bytes(e.get("top_logprobs").get(k).get("bytes")));
                assertEquals(l.getTop(k).getLogprob(), e.get("top_logprobs").get(k).get("logprob").floatValue());
            }
        }
    }

    /**
     * vLLM's return_tokens_as_token_ids: every token in the logprobs is named "token_id:N" (its bytes are
     * that name's), in chat, in completions' legacy lists and their alternatives, and in an echoed prompt.
     */
    @Test
    void logprobsNameTokensByIdWhenAsked() throws Exception {
        JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"temperature\": 0, \"max_tokens\": 3, "
                + "\"ignore_eos\": true, \"logprobs\": true, \"top_logprobs\": 2, \"return_tokens_as_token_ids\": true}"));
        List<TokenLogprob> expected = generate(GenerateRequest.newBuilder().setChat(chat())
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(3).setIgnoreEos(true).setLogprobs(2))
                .build()).stream().flatMap(r -> r.getLogprobsList().stream()).toList();
        JsonNode content = a.get("choices").get(0).get("logprobs").get("content");
        assertEquals(3, content.size());
        for (int i = 0; i < 3; i++) {
            TokenLogprob l = expected.get(i);
            JsonNode e = content.get(i);
            assertEquals("token_id:" + l.getTokenId(), e.get("token").asText());
            assertArrayEquals(("token_id:" + l.getTokenId()).getBytes(StandardCharsets.UTF_8), bytes(e.get("bytes")));
            assertEquals(l.getLogprob(), e.get("logprob").floatValue());
            for (int k = 0; k < 2; k++) {
                assertEquals("token_id:" + l.getTop(k).getTokenId(), e.get("top_logprobs").get(k).get("token").asText());
            }
        }
        List<Integer> prompt = ids("one two three", true);
        JsonNode c = ok(post("/v1/completions", "{\"prompt\": \"one two three\", \"temperature\": 0, \"max_tokens\": 2, "
                + "\"ignore_eos\": true, \"logprobs\": 1, \"echo\": true, \"return_tokens_as_token_ids\": true}"));
        JsonNode legacy = c.get("choices").get(0).get("logprobs");
        JsonNode tokens = legacy.get("tokens");
        assertEquals(prompt.size() + 2, tokens.size(), legacy.toString());
        for (int i = 0; i < prompt.size(); i++) {
            assertEquals("token_id:" + prompt.get(i), tokens.get(i).asText());
        }
        for (int i = 1; i < tokens.size(); i++) { // each alternative too; the prompt's first token has none
            legacy.get("top_logprobs").get(i).fieldNames()
                    .forEachRemaining(name -> assertTrue(name.matches("token_id:\\d+"), name));
        }
        // Without the switch the same request names tokens by their text.
        JsonNode plain = ok(post("/v1/completions", "{\"prompt\": \"one two three\", \"temperature\": 0, "
                + "\"max_tokens\": 2, \"ignore_eos\": true, \"logprobs\": 1, \"echo\": true}"));
        assertEquals(decode(List.of(prompt.get(1))), plain.get("choices").get(0).get("logprobs").get("tokens").get(1).asText());
    }

    /** vLLM's /tokenize return_token_strs: each id's string as the vocabulary writes it (byte-level form). */
    @Test
    void tokenizeReturnsTheVocabularysStringsWhenAsked() throws Exception {
        JsonNode t = ok(post("/tokenize", "{\"prompt\": \"Hello world, héllo\", \"add_special_tokens\": false, "
                + "\"return_token_strs\": true}"));
        Tokenizer tokenizer = Tokenizer.fromModelDir(dir);
        JsonNode strs = t.get("token_strs");
        assertEquals(t.get("count").asInt(), strs.size());
        for (int i = 0; i < strs.size(); i++) {
            assertEquals(tokenizer.tokenString(t.get("tokens").get(i).asInt()), strs.get(i).asText());
        }
        assertTrue(strs.toString().contains("Ġworld"), strs.toString()); // the byte-level form, not decoded text
        assertFalse(ok(post("/tokenize", "{\"prompt\": \"Hello\"}")).has("token_strs"));
        assertError(post("/tokenize", "{\"prompt\": \"Hello\", \"return_token_strs\": \"yes\"}"), 400,
                "return_token_strs");
    }

    private static byte[] bytes(JsonNode array) {
        byte[] b = new byte[array.size()];
        for (int i = 0; i < b.length; i++) {
            b[i] = (byte) array.get(i).asInt();
        }
        return b;
    }

    /** The text of generated ids, decoded independently of the generation's own output parsing. */
    private static String decode(List<Integer> ids) {
        return grpc.detokenize(dev.epic.proto.DetokenizeRequest.newBuilder().addAllTokenIds(ids).build()).getText();
    }

    private static List<Integer> ids(String text, boolean bos) {
        return grpc.tokenize(dev.epic.proto.TokenizeRequest.newBuilder().setText(text).setAddSpecialTokens(bos).build())
                .getTokenIdsList();
    }

    private static String idList(List<Integer> ids) {
        return ids.stream().map(String::valueOf).collect(java.util.stream.Collectors.joining(","));
    }

    /** vLLM's use_beam_search: n choices, the gRPC beam search's, best first; a 400 names what it cannot take. */
    @Test
    void beamSearchAnswersAreTheGrpcBeams() throws Exception {
        JsonNode a = ok(post("/v1/completions", "{\"prompt\": \"The sky is\", \"use_beam_search\": true, \"n\": 2, "
                + "\"max_tokens\": 4, \"length_penalty\": 0.5, \"ignore_eos\": true}"));
        List<GenerateResponse> ref = generate(GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addAllIds(ids("The sky is", true)))
                .setSampling(SamplingParams.newBuilder().setN(2).setMaxTokens(4).setIgnoreEos(true))
                .setBeamSearch(dev.epic.proto.BeamSearch.newBuilder().setLengthPenalty(0.5f)).build());
        assertEquals(2, a.get("choices").size());
        for (int i = 0; i < 2; i++) {
            final int index = i;
            List<Integer> tokens = ref.stream().filter(r -> r.getIndex() == index)
                    .flatMap(r -> r.getTokenIdsList().stream()).toList();
            assertEquals(4, tokens.size());
            assertEquals(decode(tokens), a.get("choices").get(i).get("text").asText(), "choice " + i);
            assertEquals("length", a.get("choices").get(i).get("finish_reason").asText());
        }
        assertEquals(8, a.get("usage").get("completion_tokens").asInt());
        HttpResponse<String> bad = post("/v1/completions", "{\"prompt\": \"x\", \"use_beam_search\": true, "
                + "\"logit_bias\": {\"5\": 3}}");
        assertEquals(400, bad.statusCode(), bad.body());
        assertTrue(bad.body().contains("logit_bias"), bad.body());
    }

    /** A completion is the plain decoded text of its tokens, after a prompt that starts with BOS. */
    @Test
    void completionsTakeTextOrTokenIds() throws Exception {
        JsonNode a = ok(post("/v1/completions",
                "{\"prompt\": \"The sky is\", \"temperature\": 0, \"max_tokens\": 5, \"ignore_eos\": true, \"logprobs\": 1}"));
        List<Integer> withBos = ids("The sky is", true);
        assertEquals(0, withBos.getFirst(), "BOS first");
        List<GenerateResponse> ref = generate(GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addAllIds(withBos))
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(5).setIgnoreEos(true)).build());
        List<Integer> generated = ref.stream().flatMap(r -> r.getTokenIdsList().stream()).toList();
        assertEquals("text_completion", a.get("object").asText());
        JsonNode choice = a.get("choices").get(0);
        String text = choice.get("text").asText();
        assertEquals(decode(generated), text);
        assertEquals(withBos.size(), a.get("usage").get("prompt_tokens").asInt());
        JsonNode lp = choice.get("logprobs");
        assertEquals(5, lp.get("tokens").size());
        assertEquals(5, lp.get("token_logprobs").size());
        assertEquals(1, lp.get("top_logprobs").get(0).size());
        // Each token's text sits at its offset, as long as no token so far split a UTF-8 character.
        for (int i = 0; i < 5 && !lp.get("tokens").get(i).asText().contains("\uFFFD"); i++) {
            assertTrue(text.startsWith(lp.get("tokens").get(i).asText(), lp.get("text_offset").get(i).asInt()),
                    "token " + i + " at its text_offset");
        }
        // Without max_tokens a completion stops after 16 tokens, as OpenAI's and vLLM's do.
        JsonNode open = ok(post("/v1/completions", "{\"prompt\": \"The sky is\", \"ignore_eos\": true}"));
        assertEquals(16, open.get("usage").get("completion_tokens").asInt());
        assertEquals("length", open.get("choices").get(0).get("finish_reason").asText());
        // The same prompt as token ids (BOS included), streamed.
        HttpResponse<String> s = post("/v1/completions", "{\"prompt\": [" + idList(withBos)
                + "], \"temperature\": 0, \"max_tokens\": 5, \"ignore_eos\": true, \"stream\": true}");
        assertEquals(200, s.statusCode(), s.body());
        StringBuilder streamed = new StringBuilder();
        List<String> events = events(s.body());
        for (String e : events.subList(0, events.size() - 1)) {
            JsonNode chunk = JSON.readTree(e);
            assertEquals("text_completion", chunk.get("object").asText());
            streamed.append(chunk.get("choices").get(0).get("text").asText());
        }
        assertEquals(text, streamed.toString());
    }

    /** Several prompts in one request: prompt i's n choices are at i * n .. i * n + n - 1, each as if asked alone. */
    @Test
    void severalPromptsAnswerInOrder() throws Exception {
        String[] prompts = {"The sky is", "Once upon"};
        String common = "\"temperature\": 0, \"max_tokens\": 4, \"ignore_eos\": true, \"n\": 2";
        List<String> alone = new ArrayList<>();
        int promptTokens = 0;
        for (String p : prompts) {
            JsonNode a = ok(post("/v1/completions", "{\"prompt\": \"" + p + "\", " + common + "}"));
            alone.add(a.get("choices").get(0).get("text").asText());
            promptTokens += a.get("usage").get("prompt_tokens").asInt();
        }
        String body = "{\"prompt\": [\"" + prompts[0] + "\", \"" + prompts[1] + "\"], " + common;
        awaitIdle(); // four sequences fill this server: the single requests' slots must be free first
        JsonNode all = ok(post("/v1/completions", body + "}"));
        assertEquals(4, all.get("choices").size());
        for (int i = 0; i < 4; i++) {
            assertEquals(i, all.get("choices").get(i).get("index").asInt());
            assertEquals(alone.get(i / 2), all.get("choices").get(i).get("text").asText(), "choice " + i);
        }
        assertEquals(promptTokens, all.get("usage").get("prompt_tokens").asInt(), "each prompt counted once");
        assertEquals(16, all.get("usage").get("completion_tokens").asInt());
        // Streamed, the chunks of the four choices interleave; each adds up to its answer.
        awaitIdle();
        HttpResponse<String> s = post("/v1/completions", body + ", \"stream\": true}");
        assertEquals(200, s.statusCode(), s.body());
        StringBuilder[] text = {new StringBuilder(), new StringBuilder(), new StringBuilder(), new StringBuilder()};
        List<String> events = events(s.body());
        assertEquals("[DONE]", events.getLast());
        for (String e : events.subList(0, events.size() - 1)) {
            JsonNode c = JSON.readTree(e).get("choices").get(0);
            text[c.get("index").asInt()].append(c.get("text").asText());
        }
        for (int i = 0; i < 4; i++) {
            assertEquals(alone.get(i / 2), text[i].toString(), "streamed choice " + i);
        }
    }

    /** A finished request's slot is freed just after its last message goes out: wait for that. */
    private static void awaitIdle() throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while ((coordinator.scheduler().running() > 0 || coordinator.scheduler().waiting() > 0)
                && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
        assertEquals(0, coordinator.scheduler().running(), "batch slots still held");
        assertEquals(0, coordinator.scheduler().waiting(), "requests still queued");
    }

    /**
     * lm-evaluation-harness scores a continuation with echo, logprobs 1 and token-id prompts: the answer
     * starts with the prompt, whose tokens carry their logprobs (the first none). max_tokens 0 leaves the
     * generated token out. A text prompt is echoed as given, its logprobs starting at BOS.
     */
    @Test
    void echoScoresThePromptAsEvaluationHarnessesDo() throws Exception {
        List<Integer> prompt = ids("The sky is blue", false);
        List<GenerateResponse> ref = generate(GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addAllIds(prompt))
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(1).setLogprobs(1).setPromptLogprobs(1))
                .build());
        assertEquals(prompt, ref.getFirst().getPromptTokenIdsList());
        List<TokenLogprob> promptLogprobs = ref.getFirst().getPromptLogprobsList();
        assertEquals(prompt.size() - 1, promptLogprobs.size());
        String generated = decode(ref.getFirst().getTokenIdsList());
        for (int maxTokens : new int[] {1, 0}) {
            JsonNode a = ok(post("/v1/completions", "{\"prompt\": [[" + idList(prompt) + "]], \"max_tokens\": "
                    + maxTokens + ", \"logprobs\": 1, \"echo\": true, \"temperature\": 0}"));
            JsonNode choice = a.get("choices").get(0);
            assertEquals("The sky is blue" + (maxTokens == 0 ? "" : generated), choice.get("text").asText());
            JsonNode lp = choice.get("logprobs");
            assertEquals(prompt.size() + maxTokens, lp.get("tokens").size());
            assertTrue(lp.get("token_logprobs").get(0).isNull());
            assertTrue(lp.get("top_logprobs").get(0).isNull());
            for (int i = 1; i < prompt.size(); i++) {
                assertEquals(promptLogprobs.get(i - 1).getLogprob(), lp.get("token_logprobs").get(i).floatValue());
                assertEquals(promptLogprobs.get(i - 1).getToken().toStringUtf8(), lp.get("tokens").get(i).asText());
                assertEquals(1, lp.get("top_logprobs").get(i).size());
            }
            assertEquals(maxTokens, a.get("usage").get("completion_tokens").asInt());
            assertEquals(prompt.size(), a.get("usage").get("prompt_tokens").asInt());
            assertEquals("length", choice.get("finish_reason").asText());
        }
        // A text prompt, streamed: echoed as given, the tokens from BOS on.
        HttpResponse<String> s = post("/v1/completions", "{\"prompt\": \"The sky is blue\", \"max_tokens\": 0, "
                + "\"logprobs\": 0, \"echo\": true, \"stream\": true}");
        assertEquals(200, s.statusCode(), s.body());
        JsonNode first = JSON.readTree(events(s.body()).getFirst()).get("choices").get(0);
        assertEquals("The sky is blue", first.get("text").asText());
        JsonNode tokens = first.get("logprobs").get("tokens");
        assertEquals(prompt.size() + 1, tokens.size());
        assertEquals("<｜begin▁of▁sentence｜>", tokens.get(0).asText());
    }

    /**
     * vLLM's prompt_logprobs N: each prompt token after the first gets an object from token id to
     * {logprob, rank, decoded_token}: its own token first (the gRPC answer's logprob and rank), then the N
     * most likely (ranks 1..N). A completion carries them per choice, a chat answer once beside its choices.
     */
    @Test
    void promptLogprobsAreVllmsShape() throws Exception {
        List<Integer> prompt = ids("The sky is blue today", false);
        List<GenerateResponse> ref = generate(GenerateRequest.newBuilder()
                .setTokenIds(TokenIds.newBuilder().addAllIds(prompt))
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(1).setPromptLogprobs(3)).build());
        List<TokenLogprob> expected = ref.getFirst().getPromptLogprobsList();
        JsonNode a = ok(post("/v1/completions", "{\"prompt\": [" + idList(prompt) + "], \"max_tokens\": 1, "
                + "\"prompt_logprobs\": 3, \"temperature\": 0}"));
        JsonNode pl = a.get("choices").get(0).get("prompt_logprobs");
        assertEquals(prompt.size(), pl.size());
        assertTrue(pl.get(0).isNull());
        for (int i = 1; i < prompt.size(); i++) {
            TokenLogprob l = expected.get(i - 1);
            JsonNode e = pl.get(i);
            String own = Integer.toString(prompt.get(i));
            assertEquals(own, e.fieldNames().next(), "the prompt's token first");
            assertEquals(l.getLogprob(), e.get(own).get("logprob").floatValue());
            assertTrue(l.getRank() >= 1);
            assertEquals(l.getRank(), e.get(own).get("rank").asInt());
            assertEquals(decode(List.of(prompt.get(i))), e.get(own).get("decoded_token").asText());
            boolean ownInTop = false;
            for (int j = 0; j < 3; j++) {
                String id = Integer.toString(l.getTop(j).getTokenId());
                ownInTop |= id.equals(own);
                assertEquals(id.equals(own) ? l.getRank() : j + 1, e.get(id).get("rank").asInt());
                assertEquals(l.getTop(j).getLogprob(), e.get(id).get("logprob").floatValue());
            }
            assertEquals(ownInTop ? 3 : 4, e.size());
            if (ownInTop) {
                assertTrue(l.getRank() <= 3);
            }
        }
        // Chat: once, beside the choices; 0 alternatives leave the prompt's own tokens.
        JsonNode chat = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 1, \"n\": 2, "
                + "\"prompt_logprobs\": 0}"));
        JsonNode cl = chat.get("prompt_logprobs");
        assertEquals(chat.get("usage").get("prompt_tokens").asInt(), cl.size());
        for (int i = 1; i < cl.size(); i++) {
            assertEquals(1, cl.get(i).size());
        }
        assertFalse(chat.get("choices").get(0).has("prompt_logprobs"));
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"prompt_logprobs\": 21}"), 400, "prompt_logprobs");
        // vLLM's allowed_token_ids: the answer's tokens are among them (empty is refused, as in vLLM).
        JsonNode only = ok(post("/v1/completions", "{\"prompt\": [" + idList(prompt) + "], \"max_tokens\": 4, "
                + "\"allowed_token_ids\": [" + prompt.get(1) + ", " + prompt.get(2) + "], \"logprobs\": 0}"));
        List<String> texts = List.of(decode(List.of(prompt.get(1))), decode(List.of(prompt.get(2))));
        JsonNode chosen = only.get("choices").get(0).get("logprobs").get("tokens");
        assertEquals(4, chosen.size());
        for (JsonNode t : chosen) {
            assertTrue(texts.contains(t.asText()), only.toString());
        }
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"allowed_token_ids\": []}"), 400, "allowed_token_ids");
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"prompt_logprobs\": 1, \"stream\": true}"), 400,
                "'stream': true");
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"prompt_logprobs\": 1, \"echo\": true, "
                + "\"logprobs\": 1}"), 400, "echo");
    }

    /**
     * JSON mode: whatever the (random) model prefers, the answer is a JSON object, or a prefix of one
     * when max_tokens cuts it; one that stopped by itself parses.
     */
    @Test
    void jsonModeAnswersAreJsonObjects() throws Exception {
        int stopped = 0;
        for (int seed = 0; seed < 4; seed++) {
            JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": "
                    + "{\"type\": \"json_object\"}, \"temperature\": 1.0, \"seed\": " + seed + ", \"max_tokens\": 40}"));
            JsonNode choice = a.get("choices").get(0);
            String content = choice.get("message").get("content").asText();
            assertTrue(choice.get("message").get("reasoning_content").isNull());
            assertTrue(new dev.epic.text.constrain.SchemaCursor(dev.epic.text.constrain.JsonSchema.ANY_OBJECT).step(content.getBytes(StandardCharsets.UTF_8)), content);
            assertTrue(content.strip().startsWith("{"), content);
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertTrue(JSON.readTree(content).isObject(), content);
                stopped++;
            } else {
                assertEquals("length", choice.get("finish_reason").asText());
            }
        }
        // The parse above is the check independent of the server's own automaton: it must have run.
        assertTrue(stopped > 0, "no answer finished by itself, so none was parsed");
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": {\"type\": \"json_object\"}, "
                + "\"ignore_eos\": true}"), 400, "response_format");
    }

    /**
     * Structured outputs: every answer is a prefix of (or, when it stopped by itself, a whole) value
     * matching the schema; a keyword the server cannot honour is a 400 naming it.
     */
    @Test
    void jsonSchemaAnswersMatchTheSchema() throws Exception {
        String schema = "{\"type\": \"object\", \"properties\": {\"city\": {\"type\": \"string\"}, "
                + "\"rain\": {\"type\": \"boolean\"}, \"days\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}, "
                + "\"maxItems\": 3}}, \"required\": [\"city\", \"rain\"], \"additionalProperties\": false}";
        dev.epic.text.constrain.JsonSchema compiled = dev.epic.text.constrain.JsonSchema.compile(schema);
        // Tokens that close a string or an object get a boost (logit_bias), so that some answers finish
        // within max_tokens and can be checked apart from the automaton that produced them.
        Tokenizer tokenizer = Tokenizer.fromModelDir(dir);
        StringBuilder bias = new StringBuilder("{");
        for (int id = 0; id < tokenizer.size(); id++) {
            String t = new String(tokenizer.tokenBytes(id), StandardCharsets.UTF_8);
            if (t.contains("\"") || t.contains("}")) {
                bias.append(bias.length() > 1 ? ", " : "").append('"').append(id).append("\": 8");
            }
        }
        bias.append('}');
        int stopped = 0;
        for (int seed = 0; seed < 3; seed++) {
            JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": {\"type\": "
                    + "\"json_schema\", \"json_schema\": {\"name\": \"weather\", \"strict\": true, \"schema\": " + schema
                    + "}}, \"temperature\": 1.0, \"seed\": " + seed + ", \"max_tokens\": 60, \"logit_bias\": " + bias + "}"));
            JsonNode choice = a.get("choices").get(0);
            String content = choice.get("message").get("content").asText();
            dev.epic.text.constrain.SchemaCursor at = new dev.epic.text.constrain.SchemaCursor(compiled);
            assertTrue(at.step(content.getBytes(StandardCharsets.UTF_8)), content);
            if (choice.get("finish_reason").asText().equals("stop")) {
                assertTrue(at.complete(), content);
                // Checked apart from the automaton that produced it: Jackson's parse and the schema by hand.
                JsonNode v = JSON.readTree(content);
                assertTrue(v.get("city").isTextual() && v.get("rain").isBoolean(), content);
                v.fieldNames().forEachRemaining(f -> assertTrue(List.of("city", "rain", "days").contains(f), content));
                if (v.has("days")) {
                    assertTrue(v.get("days").size() <= 3, content);
                    v.get("days").forEach(d -> assertTrue(d.isIntegralNumber(), content));
                }
                stopped++;
            }
        }
        assertTrue(stopped > 0, "no answer finished by itself, so none was checked apart from the automaton");
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": {\"type\": \"json_schema\", "
                + "\"json_schema\": {\"name\": \"x\", \"schema\": {\"type\": \"string\", \"pattern\": \"(?=a)\"}}}}"),
                400, "lookaround");
    }

    private static final String TOOLS = """
            "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather now",
              "parameters": {"type": "object", "properties": {"unit": {"enum": ["c", "f"]}, "rain": {"type": "boolean"},
                               "hours": {"type": "integer", "minimum": 1, "maximum": 48},
                               "day": {"type": "string", "format": "date"}},
                             "required": ["unit", "hours"], "additionalProperties": false}}},
              {"type": "function", "function": {"name": "get_time"}}]""";

    /**
     * tool_choice "required" (with parallel_tool_calls false) and a named function: the answer is one
     * call of the tools with arguments that match their schemas. Tool choices the server cannot
     * honour are 400s naming what is wrong.
     */
    @Test
    void forcedToolChoiceAnswersWithValidCalls() throws Exception {
        for (int seed = 0; seed < 3; seed++) {
            for (String choice : List.of("\"required\", \"parallel_tool_calls\": false",
                    "{\"type\": \"function\", \"function\": {\"name\": \"get_weather\"}}")) {
                JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", " + TOOLS + ", \"tool_choice\": "
                        + choice + ", \"temperature\": 1.0, \"seed\": " + seed + ", \"max_tokens\": 240}"));
                JsonNode c = a.get("choices").get(0);
                assertEquals("tool_calls", c.get("finish_reason").asText(), a.toString());
                JsonNode calls = c.get("message").get("tool_calls");
                assertEquals(1, calls.size(), a.toString());
                String name = calls.get(0).get("function").get("name").asText();
                JsonNode args = JSON.readTree(calls.get(0).get("function").get("arguments").asText());
                if (choice.contains("get_weather") || name.equals("get_weather")) {
                    assertEquals("get_weather", name, a.toString());
                    assertTrue(List.of("c", "f").contains(args.path("unit").asText()), a.toString());
                    assertTrue(args.path("hours").isInt() && args.get("hours").asInt() >= 1 && args.get("hours").asInt() <= 48,
                            a.toString());
                    if (args.has("day")) {
                        java.time.LocalDate.parse(args.get("day").asText());
                    }
                    args.fieldNames().forEachRemaining(f -> assertTrue(List.of("unit", "rain", "hours", "day").contains(f),
                            a.toString()));
                } else {
                    assertEquals("get_time", name, a.toString());
                    assertTrue(args.isObject(), a.toString());
                }
                assertTrue(c.get("message").get("content").isNull() || c.get("message").get("content").asText().isBlank(),
                        a.toString());
            }
        }
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", " + TOOLS + ", \"tool_choice\": {\"type\": "
                + "\"function\", \"function\": {\"name\": \"get_news\"}}}"), 400, "get_news");
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", " + TOOLS + ", \"tool_choice\": \"required\", "
                + "\"response_format\": {\"type\": \"json_object\"}}"), 400, "response_format");
        // "auto" with parallel_tool_calls false (LangChain's bind_tools, the Agents SDK) is answered, not refused.
        ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", " + TOOLS + ", \"parallel_tool_calls\": false, "
                + "\"max_tokens\": 2}"));
        ok(post("/v1/responses", "{\"input\": \"Weather?\", \"tools\": [{\"type\": \"function\", \"name\": \"f\"}], "
                + "\"parallel_tool_calls\": false, \"max_output_tokens\": 2}"));
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"tools\": [{\"type\": \"function\", "
                + "\"function\": {\"name\": \"f\", \"parameters\": {\"type\": \"object\", \"properties\": {\"s\": "
                + "{\"type\": \"number\", \"multipleOf\": 2}}}}}], \"tool_choice\": \"required\"}"), 400, "multipleOf");
    }

    /**
     * This server's V3 template has no thinking, so a constrained answer's prompt is the template's own,
     * with or without enable_thinking (vLLM ignores the switch without a reasoning parser), for gRPC and
     * HTTP clients and in /tokenize; the JSON starts at once. (Reasoning templates:
     * PromptBuilderTest.thinkingIsSkippedOnlyWhereTheTemplateThinks.)
     */
    @Test
    void constrainedAnswersOnATemplateWithoutThinkingKeepItsPrompt() throws Exception {
        GenerateRequest json = GenerateRequest.newBuilder().setChat(chat())
                .setResponseFormat(dev.epic.proto.ResponseFormat.newBuilder()
                        .setType(dev.epic.proto.ResponseFormat.Type.JSON_OBJECT))
                .setSampling(SamplingParams.newBuilder().setMaxTokens(1)).build();
        int free = generate(json.toBuilder().clearResponseFormat().build()).getLast().getUsage().getPromptTokens();
        assertEquals(free, generate(json).getLast().getUsage().getPromptTokens(), "constrained, by default");
        assertEquals(free, generate(json.toBuilder().setEnableThinking(true).build()).getLast().getUsage().getPromptTokens());
        assertEquals(free, generate(json.toBuilder().setEnableThinking(false).build()).getLast().getUsage().getPromptTokens());
        assertEquals(free, generate(json.toBuilder().clearResponseFormat().setEnableThinking(false).build()).getLast()
                .getUsage().getPromptTokens());
        JsonNode tokens = JSON.readTree(post("/tokenize", "{" + CHAT_MESSAGES + ", \"chat_template_kwargs\": "
                + "{\"enable_thinking\": false}}").body());
        assertEquals(free, tokens.get("count").asInt(), tokens.toString());
        JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": {\"type\": "
                + "\"json_object\"}, \"chat_template_kwargs\": {\"enable_thinking\": true}, \"max_tokens\": 16, "
                + "\"temperature\": 1.0, \"seed\": 3}"));
        assertEquals(free, a.get("usage").get("prompt_tokens").asInt(), a.toString());
        JsonNode m = a.get("choices").get(0).get("message");
        assertTrue(m.path("reasoning_content").asText("").isEmpty(), a.toString());
        assertTrue(m.get("content").asText().strip().startsWith("{"), a.toString());
    }

    /**
     * A prompt that opens a thinking block is thought in before a constrained answer, whether it comes
     * as text or as token ids: the same seed gives the same (unconstrained) thought either way.
     */
    @Test
    void aPromptThatOpensAThoughtThinksFirstAsTextOrIds() throws Exception {
        String prompt = "Q?<think>\\n";
        JsonNode ids = JSON.readTree(post("/tokenize", "{\"prompt\": \"" + prompt + "\", \"add_special_tokens\": false}")
                .body()).get("tokens");
        String rest = ", \"response_format\": {\"type\": \"json_object\"}, \"max_tokens\": 8, \"temperature\": 1.0, "
                + "\"seed\": 4}";
        String asText = ok(post("/v1/completions", "{\"prompt\": \"" + prompt + "\", \"add_special_tokens\": false" + rest))
                .get("choices").get(0).get("text").asText();
        String asIds = ok(post("/v1/completions", "{\"prompt\": " + ids + rest)).get("choices").get(0).get("text").asText();
        assertEquals(asText, asIds);
        assertFalse(asText.strip().startsWith("{"), "the thought comes first: " + asText);
    }

    /**
     * The Responses API answers what the chat API answers for the same conversation: the same text,
     * usage and finish; its stream's deltas add up to that text, between response.created and the
     * closing event.
     */
    @Test
    void responsesApiAnswersAsTheChatApiDoes() throws Exception {
        String sampling = "\"temperature\": 1.0, \"seed\": 9";
        JsonNode chat = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 12, " + sampling + "}"));
        String request = "{\"instructions\": \"Be brief.\", \"input\": [{\"role\": \"user\", \"content\": "
                + "[{\"type\": \"input_text\", \"text\": \"Hello there\"}]}], \"max_output_tokens\": 12, " + sampling;
        JsonNode r = ok(post("/v1/responses", request + "}"));
        assertEquals("response", r.get("object").asText());
        assertEquals("incomplete", r.get("status").asText(), r.toString());
        assertEquals("max_output_tokens", r.get("incomplete_details").get("reason").asText());
        JsonNode message = r.get("output").get(r.get("output").size() - 1);
        assertEquals("message", message.get("type").asText());
        assertEquals("incomplete", message.get("status").asText(), "cut by max_output_tokens");
        String text = message.get("content").get(0).get("text").asText();
        assertEquals(chat.get("choices").get(0).get("message").get("content").asText(), text);
        assertEquals(chat.get("usage").get("prompt_tokens").asInt(), r.get("usage").get("input_tokens").asInt());
        assertEquals(12, r.get("usage").get("output_tokens").asInt());

        HttpResponse<String> s = post("/v1/responses", request + ", \"stream\": true}");
        assertEquals(200, s.statusCode());
        List<JsonNode> events = new ArrayList<>();
        for (String block : s.body().split("\n\n")) {
            if (block.isBlank()) {
                continue;
            }
            String[] lines = block.split("\n", 2);
            JsonNode e = JSON.readTree(lines[1].substring("data: ".length()));
            assertEquals("event: " + e.get("type").asText(), lines[0]);
            assertEquals(events.size(), e.get("sequence_number").asInt());
            events.add(e);
        }
        assertEquals("response.created", events.getFirst().get("type").asText());
        assertEquals("response.incomplete", events.getLast().get("type").asText());
        StringBuilder deltas = new StringBuilder();
        events.stream().filter(e -> e.get("type").asText().equals("response.output_text.delta"))
                .forEach(e -> deltas.append(e.get("delta").asText()));
        assertEquals(text, deltas.toString());
        assertEquals(text, events.getLast().get("response").get("output").get(0).get("content").get(0).get("text").asText());
    }

    /** A message of several text parts reads the same through both APIs: the parts joined by newlines. */
    @Test
    void responsesApiJoinsTextPartsAsTheChatApiDoes() throws Exception {
        String sampling = "\"max_tokens\": 4, \"temperature\": 1.0, \"seed\": 7";
        JsonNode chat = ok(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "[{\"type\": \"text\", \"text\": \"Hello\"}, {\"type\": \"text\", \"text\": \"World\"}]}], " + sampling + "}"));
        JsonNode joined = ok(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "\"Hello\\nWorld\"}], " + sampling + "}"));
        JsonNode r = ok(post("/v1/responses", "{\"input\": [{\"role\": \"user\", \"content\": [{\"type\": \"input_text\", "
                + "\"text\": \"Hello\"}, {\"type\": \"input_text\", \"text\": \"World\"}]}], " + sampling.replace("max_tokens",
                "max_output_tokens") + "}"));
        assertEquals(joined.path("usage").path("prompt_tokens").asInt(), chat.path("usage").path("prompt_tokens").asInt());
        assertEquals(chat.path("usage").path("prompt_tokens").asInt(), r.path("usage").path("input_tokens").asInt());
        assertEquals(chat.path("choices").get(0).path("message").path("content").asText(),
                r.path("output").get(r.path("output").size() - 1).path("content").get(0).path("text").asText());
    }

    /** Function tools through the Responses API: a forced call comes back as a function_call item, and its output goes back in. */
    @Test
    void responsesApiCallsFunctionsAndTakesTheirOutput() throws Exception {
        String tools = "\"tools\": [{\"type\": \"function\", \"name\": \"get_weather\", \"parameters\": {\"type\": "
                + "\"object\", \"properties\": {\"unit\": {\"enum\": [\"c\", \"f\"]}}, \"required\": [\"unit\"], "
                + "\"additionalProperties\": false}}]";
        JsonNode r = ok(post("/v1/responses", "{\"input\": \"Weather?\", " + tools + ", \"tool_choice\": {\"type\": "
                + "\"function\", \"name\": \"get_weather\"}, \"max_output_tokens\": 200, \"temperature\": 1.0, \"seed\": 1}"));
        JsonNode call = r.get("output").get(r.get("output").size() - 1);
        assertEquals("function_call", call.get("type").asText(), r.toString());
        assertEquals("get_weather", call.get("name").asText());
        assertTrue(List.of("c", "f").contains(JSON.readTree(call.get("arguments").asText()).get("unit").asText()), r.toString());
        String followUp = "{\"input\": [{\"role\": \"user\", \"content\": \"Weather?\"}, {\"type\": \"function_call\", "
                + "\"call_id\": \"" + call.get("call_id").asText() + "\", \"name\": \"get_weather\", \"arguments\": "
                + JSON.writeValueAsString(call.get("arguments").asText()) + "}, {\"type\": \"function_call_output\", "
                + "\"call_id\": \"" + call.get("call_id").asText() + "\", \"output\": \"sunny\"}], " + tools
                + ", \"max_output_tokens\": 4}";
        assertEquals("message", ok(post("/v1/responses", followUp)).get("output").get(0).get("type").asText());
        assertError(post("/v1/responses", "{\"input\": \"x\", \"previous_response_id\": \"resp_1\"}"), 400,
                "previous_response_id");
        assertError(post("/v1/responses", "{\"input\": \"x\", \"tools\": [{\"type\": \"web_search\"}]}"), 400,
                "web_search");
        assertError(post("/v1/responses", "{\"instructions\": \"x\"}"), 400, "input");
        assertError(post("/v1/responses", "{\"input\": \"x\", " + tools + ", \"tool_choice\": {\"type\": \"function\"}}"),
                400, "name");
    }

    /** vLLM's guided_choice and guided_regex over HTTP: the whole answer is a choice, or matches. */
    @Test
    void guidedChoiceAndRegexHoldTheWholeAnswer() throws Exception {
        for (int seed = 0; seed < 3; seed++) {
            JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"guided_choice\": [\"sunny\", \"rainy\", "
                    + "\"snow\"], \"temperature\": 1.0, \"seed\": " + seed + "}"));
            JsonNode c = a.get("choices").get(0);
            assertTrue(List.of("sunny", "rainy", "snow").contains(c.get("message").get("content").asText()), a.toString());
            assertEquals("stop", c.get("finish_reason").asText(), a.toString());
            a = ok(post("/v1/completions", "{\"prompt\": \"Date:\", \"structured_outputs\": {\"regex\": "
                    + "\"\\\\d{4}-\\\\d\\\\d\"}, \"temperature\": 1.0, \"seed\": " + seed + "}"));
            c = a.get("choices").get(0);
            assertTrue(c.get("text").asText().matches("\\d{4}-\\d\\d"), a.toString());
        }
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"guided_regex\": \"(a)\\\\1\"}"), 400,
                "back-reference");
    }

    /**
     * vLLM's guided_grammar over HTTP: the whole answer is a sentence of the GBNF grammar (checked by an
     * equivalent regex, and by its nesting for a language no regex holds); a grammar with a mistake is a
     * 400 naming the field and what is wrong.
     */
    @Test
    void aGuidedGrammarHoldsTheWholeAnswer() throws Exception {
        String sql = JSON.writeValueAsString("""
                root ::= "SELECT " cols " FROM " table (" WHERE " cond)?
                cols ::= "*" | col (", " col){0,2}
                col ::= "id" | "name" | "age"
                table ::= "users" | "orders"
                cond ::= col " = " [0-9]{1,3}
                """);
        java.util.regex.Pattern sqlText = java.util.regex.Pattern.compile("SELECT (?:\\*|(?:id|name|age)(?:, (?:id|name|age)){0,2})"
                + " FROM (?:users|orders)(?: WHERE (?:id|name|age) = [0-9]{1,3})?");
        String brackets = JSON.writeValueAsString("root ::= item+\nitem ::= \"(\" item* \")\" | \"x\"");
        for (int seed = 0; seed < 3; seed++) {
            JsonNode a = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"guided_grammar\": " + sql
                    + ", \"temperature\": 1.0, \"seed\": " + seed + "}"));
            JsonNode c = a.get("choices").get(0);
            assertTrue(sqlText.matcher(c.get("message").get("content").asText()).matches(), a.toString());
            assertEquals("stop", c.get("finish_reason").asText(), a.toString());
            a = ok(post("/v1/completions", "{\"prompt\": \"Brackets:\", \"structured_outputs\": {\"grammar\": " + brackets
                    + "}, \"max_tokens\": 400, \"temperature\": 1.0, \"seed\": " + seed + "}"));
            c = a.get("choices").get(0);
            String text = c.get("text").asText();
            assertTrue(text.matches("[()x]+"), a.toString());
            int depth = 0;
            for (char ch : text.toCharArray()) {
                depth += ch == '(' ? 1 : ch == ')' ? -1 : 0;
                assertTrue(depth >= 0, text);
            }
            if (c.get("finish_reason").asText().equals("stop")) {
                assertEquals(0, depth, text);
            }
        }
        String leftRecursive = JSON.writeValueAsString("root ::= expr\nexpr ::= expr \"+\" \"1\" | \"1\"");
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"guided_grammar\": " + leftRecursive + "}"),
                400, "left-recursive");
        assertParam(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"guided_grammar\": \"root ::= x\"}"),
                "guided_grammar");
    }

    /**
     * vLLM's skip_special_tokens: a special token the model writes (BOS, forced here by logit_bias) is left
     * out of the text by default and spelled out with false; the tokens are the same either way.
     */
    @Test
    void skipSpecialTokensFalseKeepsThemInTheText() throws Exception {
        String body = "{\"prompt\": \"hi\", \"max_tokens\": 2, \"logit_bias\": {\"0\": 100}, \"return_tokens_as_token_ids\": "
                + "true, \"logprobs\": 0";
        JsonNode skipped = ok(post("/v1/completions", body + "}")).get("choices").get(0);
        JsonNode kept = ok(post("/v1/completions", body + ", \"skip_special_tokens\": false}")).get("choices").get(0);
        assertEquals(skipped.get("logprobs").get("tokens"), kept.get("logprobs").get("tokens"));
        assertEquals("[\"token_id:0\",\"token_id:0\"]", kept.get("logprobs").get("tokens").toString());
        assertEquals("", skipped.get("text").asText());
        assertEquals("<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>", kept.get("text").asText());
        JsonNode chat = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 1, \"logit_bias\": "
                + "{\"0\": 100}, \"skip_special_tokens\": false}")).get("choices").get(0);
        assertEquals("<｜begin▁of▁sentence｜>", chat.get("message").get("content").asText());
        assertParam(post("/v1/completions", "{\"prompt\": \"hi\", \"skip_special_tokens\": \"no\"}"), "skip_special_tokens");
    }

    /** Without a coordinator to ask, the API answers 503, not a hang or a 500. */
    @Test
    void aMissingCoordinatorIs503() throws Exception {
        int dead;
        try (java.net.ServerSocket socket = new java.net.ServerSocket(0)) {
            dead = socket.getLocalPort();
        }
        try (OpenAiServer orphan = OpenAiServer.start("127.0.0.1", 0, "127.0.0.1:" + dead, null, null)) {
            String base = "http://127.0.0.1:" + orphan.port();
            for (String path : new String[] {"/health", "/v1/models"}) {
                HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + path)).GET().build(),
                        HttpResponse.BodyHandlers.ofString());
                assertEquals(503, r.statusCode(), path + ": " + r.body());
            }
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"model\": \"x\", " + CHAT_MESSAGES + "}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertError(r, 503, "");
        }
    }

    /**
     * More prompts x n than the server ever holds (max-batch 2 + max-queue 2 here) can never be
     * taken: 400 naming the prompt, not a 429 that clients retry in vain. As many as it holds run.
     */
    @Test
    void morePromptsThanTheServerHoldsAreABadRequest() throws Exception {
        HttpResponse<String> r = post("/v1/completions", "{\"prompt\": [\"a\", \"b\", \"c\"], \"n\": 2, \"max_tokens\": 1}");
        assertError(r, 400, "6 sequences");
        assertEquals("prompt", JSON.readTree(r.body()).path("error").path("param").asText());
        HttpResponse<String> fits = post("/v1/completions", "{\"prompt\": [\"a\", \"b\"], \"n\": 2, \"max_tokens\": 1}");
        assertEquals(200, fits.statusCode(), fits.body());
        assertEquals(4, JSON.readTree(fits.body()).path("choices").size());
    }

    /**
     * Several prompts answered at once (not streamed): while the first prompt's tokens are read, the
     * second's keep coming, and they wait in the HTTP front, not in the gRPC stream, which the
     * coordinator would end as a stalled reader's once its buffer stayed full (here for 1 s).
     */
    @Test
    void aLongAnswerToSeveralPromptsIsNotCutAsAStalledReader() throws Exception {
        try (CoordinatorServer patient = CoordinatorServer.start(ServedModel.open(dev.epic.model.TestData.model("tiny-v3"), null, 8000),
                ExpertBackend.local(), new SchedulerOptions(2, 2, 32), "127.0.0.1", 0,
                new io.micrometer.core.instrument.simple.SimpleMeterRegistry(), java.time.Duration.ofSeconds(1));
             OpenAiServer front = OpenAiServer.start("127.0.0.1", 0, patient.target(), null, null)) {
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + front.port()
                    + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": [[5, 17, 4], [5, 17, 5]], "
                    + "\"max_tokens\": 6000, \"ignore_eos\": true, \"logprobs\": 20}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode(), r.body());
            JsonNode choices = OpenAiRequests.JSON.readTree(r.body()).path("choices");
            assertEquals(2, choices.size());
            for (JsonNode c : choices) {
                assertEquals(6000, c.path("logprobs").path("tokens").size(), "choice " + c.path("index"));
                assertEquals("length", c.path("finish_reason").asText());
            }
        }
    }

    /**
     * A request that comes in while the coordinator shuts down (its scheduler stopped, the gRPC
     * server not yet): UNAVAILABLE over gRPC and 503 over HTTP, which clients retry elsewhere.
     */
    @Test
    void aStoppedSchedulerIsUnavailable() throws Exception {
        try (CoordinatorServer stopping = CoordinatorServer.start(ServedModel.open(dir, null, MAX_CONTEXT),
                ExpertBackend.local(), new SchedulerOptions(1, 1, 32), "127.0.0.1", 0);
             OpenAiServer front = OpenAiServer.start("127.0.0.1", 0, stopping.target(), null, null)) {
            stopping.scheduler().close();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + front.port()
                    + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\", \"max_tokens\": 1}"))
                    .build(), HttpResponse.BodyHandlers.ofString());
            assertError(r, 503, "shut down");
            ManagedChannel ch = NettyChannelBuilder.forTarget(stopping.target()).usePlaintext().build();
            try {
                StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> GenerationServiceGrpc
                        .newBlockingStub(ch).generate(GenerateRequest.newBuilder().setText("hi").build())
                        .forEachRemaining(x -> { }));
                assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode(), e.toString());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    /**
     * The shutdown order of `epic coordinator` (the coordinator, then the HTTP front at once): open
     * streams still end with finish_reason "abort" and [DONE], not a cut connection.
     */
    @Test
    @org.junit.jupiter.api.Timeout(value = 60, threadMode = org.junit.jupiter.api.Timeout.ThreadMode.SEPARATE_THREAD)
    void streamsEndWithDoneWhenTheCoordinatorAndItsFrontStop() throws Exception {
        CoordinatorServer stopping = CoordinatorServer.start(ServedModel.open(dir, null, MAX_CONTEXT),
                ExpertBackend.local(), new SchedulerOptions(4, 4, 32), "127.0.0.1", 0);
        OpenAiServer front = OpenAiServer.start("127.0.0.1", 0, stopping.target(), null, null);
        List<InputStream> streams = new ArrayList<>();
        try {
            for (int i = 0; i < 3; i++) {
                HttpResponse<InputStream> r = http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:"
                        + front.port() + "/v1/completions")).POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": "
                        + "\"Once\", \"max_tokens\": 19000, \"ignore_eos\": true, \"stream\": true}")).build(),
                        HttpResponse.BodyHandlers.ofInputStream());
                assertEquals(200, r.statusCode());
                streams.add(r.body());
            }
        } finally {
            stopping.close();
            front.close();
        }
        for (InputStream in : streams) {
            // Bounded: a cut chunked stream can leave the client waiting for its end.
            String rest = CompletableFuture.supplyAsync(() -> {
                try {
                    return new String(in.readAllBytes(), StandardCharsets.UTF_8);
                } catch (IOException e) {
                    return "cut: " + e;
                }
            }).completeOnTimeout("no end within 30 s", 30, TimeUnit.SECONDS).get();
            assertTrue(rest.contains("\"finish_reason\":\"abort\"") && rest.endsWith("data: [DONE]\n\n"),
                    rest.substring(Math.max(0, rest.length() - 300)));
        }
    }

    @Test
    void badRequestsAre400NamingTheProblem() throws Exception {
        HttpResponse<String> cold = post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"temperature\": -1}");
        assertError(cold, 400, "temperature");
        assertEquals("temperature", JSON.readTree(cold.body()).get("error").get("param").asText(), "the HTTP field");
        assertFalse(cold.body().contains("sampling."), cold.body());
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"temperature\": \"hot\"}"), 400, "temperature");
        assertEquals("top_logprobs", JSON.readTree(post("/v1/chat/completions", "{" + CHAT_MESSAGES
                + ", \"top_logprobs\": 3}").body()).get("error").get("param").asText());
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"logit_bias\": {\"999999999\": 5}}"), 400,
                "logit_bias");
        assertError(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \""
                + "x".repeat(5 << 20) + "\"}]}"), 413, "exceeds");
        assertError(post("/v1/chat/completions", "{\"messages\": []}"), 400, "messages");
        assertError(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}"), 400, "role");
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"tool_choice\": \"required\"}"), 400, "tool_choice");
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": {\"type\": \"json_schema\"}}"),
                400, "response_format");
        assertError(post("/v1/chat/completions", "{not json"), 400, "JSON");
        assertError(post("/v1/chat/completions", "{\"model\": \"gpt-4o\", " + CHAT_MESSAGES + "}"), 404, "gpt-4o");
        assertError(post("/v1/completions", "{\"prompt\": [\"a\", [1, 2], 3]}"), 400, "each prompt");
        StringBuilder tooLong = new StringBuilder();
        for (int i = 0; i <= MAX_CONTEXT; i++) {
            tooLong.append(i == 0 ? "" : ",").append(100 + i % 1000);
        }
        assertError(post("/v1/completions", "{\"prompt\": [" + tooLong + "], \"max_tokens\": 1}"), 400, "context");
        // The coordinator's refusals name the field the client sent, as OpenAI's param.
        assertParam(post("/v1/completions", "{\"prompt\": [" + tooLong + "], \"max_tokens\": 1}"), "prompt");
        assertParam(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \""
                + "word ".repeat(MAX_CONTEXT) + "\"}], \"max_tokens\": 1}"), "messages");
        assertParam(post("/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": " + MAX_CONTEXT + "}"), "max_tokens");
        assertParam(post("/v1/completions", "{\"prompt\": \"hi\", \"n\": 0}"), "n");
        assertParam(post("/v1/responses", "{\"input\": \"hi\", \"max_output_tokens\": 0}"), "max_output_tokens");
        assertParam(post("/v1/responses", "{\"input\": \"hi\", \"max_output_tokens\": " + MAX_CONTEXT + "}"),
                "max_output_tokens");
        assertParam(post("/v1/completions", "{\"prompt\": \"hi\", \"stream_options\": {\"include_usage\": true}}"),
                "stream_options");
        assertError(post("/v1/completions", "{\"prompt\": \"hi\"} trailing"), 400, "JSON");
        assertParam(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"response_format\": {\"type\": \"json_schema\", "
                + "\"json_schema\": {\"name\": \"x\", \"schema\": {\"type\": \"number\", \"multipleOf\": 3}}}}"),
                "response_format");
        assertParam(post("/v1/completions", "{\"prompt\": \"hi\", \"guided_regex\": \"(a)\\\\1\"}"), "guided_regex");
        assertError(http.send(HttpRequest.newBuilder(uri("/v1/chat/completions")).GET().build(),
                HttpResponse.BodyHandlers.ofString()), 405, "POST");
        assertError(post("/v1/embeddings", "{}"), 404, "/v1/embeddings");
    }

    /** Text content parts are joined with a newline, as vLLM joins them: the prompt is the one it renders. */
    @Test
    void textPartsJoinWithANewline() throws Exception {
        JsonNode parts = ok(post("/tokenize", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "[{\"type\": \"text\", \"text\": \"Hello\"}, {\"type\": \"text\", \"text\": \"there\"}]}]}"));
        JsonNode joined = ok(post("/tokenize", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hello\\nthere\"}]}"));
        assertEquals(joined.get("tokens"), parts.get("tokens"));
    }

    /**
     * vLLM's chat_template: refused (naming the flag) by a coordinator not started with
     * --trust-request-chat-template; taken by one that is, for /tokenize and generation alike, with the prompt
     * its template renders; a template that does not render is a 400 naming it. --chat-template's served
     * template replaces the model's for requests without their own.
     */
    @Test
    void aRequestsChatTemplateIsTakenOnlyWhenTrusted() throws Exception {
        String template = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
                + "{% if add_generation_prompt %}{{ '[assistant] ' }}{% endif %}";
        String field = ", \"chat_template\": " + JSON.writeValueAsString(template);
        String rendered = "[system] Be brief.\n[user] Hello there\n[assistant] ";
        assertError(post("/v1/chat/completions", "{" + CHAT_MESSAGES + field + "}"), 400, "--trust-request-chat-template");
        assertParam(post("/tokenize", "{" + CHAT_MESSAGES + field + "}"), "chat_template");
        assertParam(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"chat_template\": 5}"), "chat_template");
        // The model's template ignores variables it does not use, as Jinja does.
        ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 1, \"chat_template_kwargs\": {\"x\": 1}}"));
        assertParam(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"chat_template_kwargs\": [1]}"),
                "chat_template_kwargs");
        ServedModel served = ServedModel.open(dir, null, MAX_CONTEXT).withTrustRequestChatTemplate(true)
                .withChatTemplate("{% for m in messages %}{{ m['content'] }}|{% endfor %}");
        try (CoordinatorServer trusting = CoordinatorServer.start(served, ExpertBackend.local(),
                new SchedulerOptions(2, 2, 32, 0), "127.0.0.1", 0);
                OpenAiServer front = OpenAiServer.start("127.0.0.1", 0, trusting.target(), null, null)) {
            java.util.function.Function<String, HttpResponse<String>> to = body -> {
                try {
                    return http.send(HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + front.port() + "/tokenize"))
                            .POST(HttpRequest.BodyPublishers.ofString(body)).header("Content-Type", "application/json")
                            .build(), HttpResponse.BodyHandlers.ofString());
                } catch (Exception e) {
                    throw new IllegalStateException(e);
                }
            };
            JsonNode expected = ok(to.apply("{\"prompt\": " + JSON.writeValueAsString(rendered) + ", \"add_special_tokens\": false}"));
            JsonNode own = ok(to.apply("{" + CHAT_MESSAGES + field + "}"));
            assertEquals(expected.get("tokens"), own.get("tokens"), "the request's template renders the prompt");
            JsonNode servedTemplate = ok(to.apply("{" + CHAT_MESSAGES + "}"));
            JsonNode servedExpected = ok(to.apply("{\"prompt\": \"Be brief.|Hello there|\", \"add_special_tokens\": false}"));
            assertEquals(servedExpected.get("tokens"), servedTemplate.get("tokens"), "--chat-template's template otherwise");
            HttpResponse<String> answer = http.send(HttpRequest.newBuilder(java.net.URI.create("http://127.0.0.1:" + front.port()
                    + "/v1/chat/completions")).POST(HttpRequest.BodyPublishers.ofString("{" + CHAT_MESSAGES + field
                    + ", \"max_tokens\": 2}")).header("Content-Type", "application/json").build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(expected.get("count").asInt(), ok(answer).get("usage").get("prompt_tokens").asInt());
            String greeting = ", \"chat_template\": \"{{ greeting }}|{{ messages|length }}\"";
            JsonNode greeted = ok(to.apply("{" + CHAT_MESSAGES + greeting + ", \"chat_template_kwargs\": {\"greeting\": "
                    + "\"Hey\", \"enable_thinking\": false}}"));
            assertEquals(ok(to.apply("{\"prompt\": \"Hey|2\", \"add_special_tokens\": false}")).get("tokens"),
                    greeted.get("tokens"), "chat_template_kwargs are the template's variables");
            HttpResponse<String> reserved = to.apply("{" + CHAT_MESSAGES + greeting + ", \"chat_template_kwargs\": "
                    + "{\"messages\": []}}");
            assertEquals(400, reserved.statusCode(), reserved.body());
            assertTrue(reserved.body().contains("cannot set 'messages'"), reserved.body());
            HttpResponse<String> broken = to.apply("{" + CHAT_MESSAGES + ", \"chat_template\": \"{% for m in messages %}\"}");
            assertEquals(400, broken.statusCode(), broken.body());
            assertTrue(broken.body().contains("chat_template"), broken.body());
        }
    }

    /**
     * vLLM's chat echo: a continued message's text starts the answer, whole and streamed (a chunk of its own
     * after the role's), and the rest is the answer without echo; with a generation prompt after a user's
     * message there is nothing of the answer's role to echo.
     */
    @Test
    void chatEchoStartsTheAnswerWithTheMessageItContinues() throws Exception {
        String prefill = "\"messages\": [{\"role\": \"user\", \"content\": \"Count\"}, {\"role\": \"assistant\", "
                + "\"content\": \"1, 2,\", \"prefix\": true}], \"max_tokens\": 4, \"temperature\": 1.0, \"seed\": 3";
        String plain = ok(post("/v1/chat/completions", "{" + prefill + "}")).get("choices").get(0).get("message")
                .get("content").asText();
        JsonNode echoed = ok(post("/v1/chat/completions", "{" + prefill + ", \"echo\": true, \"n\": 2}"));
        assertEquals("1, 2," + plain, echoed.get("choices").get(0).get("message").get("content").asText(), echoed.toString());
        assertTrue(echoed.get("choices").get(1).get("message").get("content").asText().startsWith("1, 2,"), "every choice");
        HttpResponse<String> streamed = post("/v1/chat/completions", "{" + prefill + ", \"echo\": true, \"stream\": true}");
        assertEquals(200, streamed.statusCode(), streamed.body());
        List<String> events = events(streamed.body());
        StringBuilder content = new StringBuilder();
        for (String e : events.subList(0, events.size() - 1)) { // the last is [DONE]
            content.append(JSON.readTree(e).get("choices").get(0).get("delta").path("content").asText(""));
        }
        assertEquals("1, 2," + plain, content.toString());
        assertEquals("1, 2,", JSON.readTree(events.get(1)).get("choices").get(0).get("delta").get("content").asText());
        JsonNode fresh = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 4, \"temperature\": 1.0, "
                + "\"seed\": 3}"));
        JsonNode freshEcho = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 4, \"temperature\": "
                + "1.0, \"seed\": 3, \"echo\": true}"));
        assertEquals(fresh.get("choices").get(0).get("message"), freshEcho.get("choices").get(0).get("message"),
                "the user's message is not the answer's role");
        assertParam(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"echo\": 1}"), "echo");
    }

    /**
     * Prefill: vLLM's continue_final_message and DeepSeek's assistant "prefix" continue the last message.
     * The prompt is the conversation rendered without a generation prompt, up to that message's text:
     * its tokens are those of the whole rendered conversation but the closing end-of-sentence.
     * add_generation_prompt false alone renders the conversation whole. What cannot hold is refused by name.
     */
    @Test
    void prefillContinuesTheLastMessage() throws Exception {
        String prefill = "\"messages\": [{\"role\": \"user\", \"content\": \"Count\"}, {\"role\": \"assistant\", "
                + "\"content\": \"1, 2,\"";
        JsonNode whole = ok(post("/tokenize", "{" + prefill + "}], \"add_generation_prompt\": false}"));
        JsonNode continued = ok(post("/tokenize", "{" + prefill + "}], \"continue_final_message\": true}"));
        int n = whole.get("count").asInt();
        assertEquals(n - 1, continued.get("count").asInt(), continued.toString());
        for (int i = 0; i < n - 1; i++) {
            assertEquals(whole.get("tokens").get(i), continued.get("tokens").get(i), "token " + i);
        }
        assertEquals("<｜end▁of▁sentence｜>", decode(List.of(whole.get("tokens").get(n - 1).asInt())));
        // Generation: the prompt the model continues is that one, however it is asked for.
        for (String body : new String[] {
            "{" + prefill + "}], \"continue_final_message\": true, \"add_generation_prompt\": false, \"max_tokens\": 1}",
            "{" + prefill + ", \"prefix\": true}], \"max_tokens\": 1}"}) {
            JsonNode answer = ok(post("/v1/chat/completions", body));
            assertEquals(n - 1, answer.get("usage").get("prompt_tokens").asInt(), body);
        }
        JsonNode anew = ok(post("/v1/chat/completions", "{" + prefill + "}], \"add_generation_prompt\": false, "
                + "\"max_tokens\": 1}"));
        assertEquals(n, anew.get("usage").get("prompt_tokens").asInt());
        // Refused: both prompts at once, a prefix that is not the last assistant message, a reasoning prefix,
        // a constrained answer, and a text the template does not keep (R1-style, before </think>: none here).
        assertError(post("/v1/chat/completions", "{" + prefill + "}], \"continue_final_message\": true, "
                + "\"add_generation_prompt\": true}"), 400, "add_generation_prompt");
        assertError(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\", "
                + "\"prefix\": true}]}"), 400, "messages[0].prefix");
        assertError(post("/v1/chat/completions", "{" + prefill + ", \"prefix\": true, \"reasoning_content\": \"x\"}]}"),
                400, "messages[1].reasoning_content");
        assertError(post("/v1/chat/completions", "{" + prefill + ", \"prefix\": true}], \"response_format\": "
                + "{\"type\": \"json_object\"}}"), 400, "continue_final_message");
        assertError(post("/v1/chat/completions", "{" + prefill + "}, {\"role\": \"user\", \"content\": \"  \"}], "
                + "\"continue_final_message\": true}"), 400, "no text to continue");
        ok(post("/v1/chat/completions", "{" + prefill + ", \"prefix\": false}], \"continue_final_message\": false, "
                + "\"add_generation_prompt\": true, \"truncate_prompt_tokens\": null, \"max_tokens\": 1}"));
    }

    /**
     * DeepSeek's FIM completion: with a suffix the prompt is [BOS] <｜fim▁begin｜> prompt <｜fim▁hole｜>
     * suffix <｜fim▁end｜> (DeepSeek-V3's ids 128801, 128800, 128802), and the answer is the one those
     * ids give as a prompt; suffix with echo, truncation, token ids or a chat prompt is refused.
     */
    @Test
    void aSuffixFillsInTheMiddle() throws Exception {
        String prefix = "def add(a, b):\\n    "; // JSON escapes, as sent
        String suffix = "\\n\\nprint(add(1, 2))\\n";
        Tokenizer tok = Tokenizer.deepSeekV3();
        List<Integer> ids = new ArrayList<>();
        int[] head = tok.encodeWithBos(prefix.translateEscapes());
        ids.add(head[0]);
        ids.add(128801);
        for (int i = 1; i < head.length; i++) {
            ids.add(head[i]);
        }
        ids.add(128800);
        for (int id : tok.encode(suffix.translateEscapes())) {
            ids.add(id);
        }
        ids.add(128802);
        JsonNode fim = ok(post("/v1/completions", "{\"prompt\": \"" + prefix + "\", \"suffix\": \"" + suffix
                + "\", \"max_tokens\": 6, \"temperature\": 0, \"ignore_eos\": true}"));
        JsonNode byIds = ok(post("/v1/completions", "{\"prompt\": " + ids + ", \"max_tokens\": 6, \"temperature\": 0, "
                + "\"ignore_eos\": true}"));
        assertEquals(ids.size(), fim.get("usage").get("prompt_tokens").asInt(), fim.toString());
        assertEquals(byIds.get("choices").get(0).get("text"), fim.get("choices").get(0).get("text"));
        // Without BOS as asked, the frame starts the prompt.
        JsonNode noBos = ok(post("/v1/completions", "{\"prompt\": \"" + prefix + "\", \"suffix\": \"" + suffix
                + "\", \"max_tokens\": 1, \"add_special_tokens\": false}"));
        assertEquals(ids.size() - 1, noBos.get("usage").get("prompt_tokens").asInt());

        assertError(post("/v1/completions", "{\"prompt\": \"x\", \"suffix\": \"y\", \"echo\": true}"), 400, "suffix");
        assertError(post("/v1/completions", "{\"prompt\": \"x\", \"suffix\": 3}"), 400, "suffix");
        assertError(post("/v1/completions", "{\"prompt\": \"x\", \"suffix\": \"y\", \"truncate_prompt_tokens\": 2}"),
                400, "suffix");
        assertError(post("/v1/completions", "{\"prompt\": [1, 2], \"suffix\": \"y\"}"), 400, "only for a text prompt");
        StatusRuntimeException chat = assertThrows(StatusRuntimeException.class, () -> generate(GenerateRequest
                .newBuilder().setChat(chat()).setSuffix("y").build()));
        assertEquals(Status.Code.INVALID_ARGUMENT, chat.getStatus().getCode());
        assertTrue(chat.getStatus().getDescription().contains("suffix"), chat.getStatus().getDescription());
    }

    /**
     * vLLM's truncate_prompt_tokens keeps a prompt's last N tokens (-1: as many as the context holds),
     * for chat and completions; nonsense values and echo (whose prompt would not be the one answered) are refused.
     */
    @Test
    void truncatePromptTokensKeepsThePromptsEnd() throws Exception {
        JsonNode full = ok(post("/v1/completions", "{\"prompt\": \"one two three four five six\", \"max_tokens\": 1}"));
        int n = full.get("usage").get("prompt_tokens").asInt();
        assertTrue(n > 3, full.toString());
        JsonNode cut = ok(post("/v1/completions", "{\"prompt\": \"one two three four five six\", \"max_tokens\": 1, "
                + "\"truncate_prompt_tokens\": 3, \"temperature\": 0}"));
        assertEquals(3, cut.get("usage").get("prompt_tokens").asInt());
        // The same as sending those three tokens.
        JsonNode ids = ok(post("/tokenize", "{\"prompt\": \"one two three four five six\"}")).get("tokens");
        JsonNode last3 = ok(post("/v1/completions", "{\"prompt\": [" + ids.get(n - 3) + ", " + ids.get(n - 2) + ", "
                + ids.get(n - 1) + "], \"max_tokens\": 1, \"temperature\": 0}"));
        assertEquals(last3.get("choices").get(0).get("text"), cut.get("choices").get(0).get("text"));
        assertEquals(n, ok(post("/v1/completions", "{\"prompt\": \"one two three four five six\", \"max_tokens\": 1, "
                + "\"truncate_prompt_tokens\": -1}")).get("usage").get("prompt_tokens").asInt());
        JsonNode chat = ok(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 1, "
                + "\"truncate_prompt_tokens\": 4}"));
        assertEquals(4, chat.get("usage").get("prompt_tokens").asInt());
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"truncate_prompt_tokens\": 0}"), 400,
                "truncate_prompt_tokens");
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"truncate_prompt_tokens\": 99999999}"), 400,
                "truncate_prompt_tokens");
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"truncate_prompt_tokens\": 2, \"echo\": true}"),
                400, "truncate_prompt_tokens");
    }

    /**
     * CORS, as vLLM's middleware answers it: a preflight is 204 with the allowed methods and headers
     * before the API key is checked (browsers send it without one), and every answer to an allowed
     * Origin carries Access-Control-Allow-Origin ("*" by default, else the origin itself).
     */
    /**
     * With the coordinator's meters, GET /metrics on the API's port answers them in Prometheus' text
     * format without the API key (as vLLM's /metrics), while /v1 still needs it; without meters it is 404.
     */
    @Test
    void metricsAreServedOnTheApiPort() throws Exception {
        try (dev.epic.transport.ProcessMeters meters = dev.epic.transport.ProcessMeters.open("127.0.0.1", 0, true);
             OpenAiServer guarded = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, "s3cret",
                     List.of("*"), meters::scrape)) {
            meters.registry().counter("epic.test.scrapes").increment(3);
            String base = "http://127.0.0.1:" + guarded.port();
            HttpResponse<String> scraped = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics")).GET().build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, scraped.statusCode(), scraped.body());
            assertTrue(scraped.headers().firstValue("Content-Type").orElse("").startsWith("text/plain; version=0.0.4"));
            assertTrue(scraped.body().contains("epic_test_scrapes_total 3.0"), scraped.body());
            assertTrue(scraped.body().contains("jvm_memory_used_bytes"), "the JVM's meters too");
            HttpResponse<String> posted = http.send(HttpRequest.newBuilder(URI.create(base + "/metrics"))
                    .POST(HttpRequest.BodyPublishers.ofString("")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(405, posted.statusCode(), posted.body());
            assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).GET().build(),
                    HttpResponse.BodyHandlers.ofString()), 401, "API key");
        }
        try (OpenAiServer guarded = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, "s3cret")) {
            HttpResponse<String> none = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + guarded.port() + "/metrics")).header("Authorization", "Bearer s3cret")
                    .GET().build(), HttpResponse.BodyHandlers.ofString());
            assertError(none, 404, "/metrics");
        }
    }

    @Test
    void browsersGetCorsHeaders() throws Exception {
        try (OpenAiServer guarded = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, "s3cret")) {
            String base = "http://127.0.0.1:" + guarded.port();
            HttpResponse<String> pre = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/chat/completions"))
                    .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", "https://app.example")
                    .header("Access-Control-Request-Method", "POST")
                    .header("Access-Control-Request-Headers", "x-stainless-os").build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(204, pre.statusCode(), pre.body());
            assertEquals("*", pre.headers().firstValue("Access-Control-Allow-Origin").orElse(""));
            assertEquals("GET, POST, OPTIONS", pre.headers().firstValue("Access-Control-Allow-Methods").orElse(""));
            String allowed = pre.headers().firstValue("Access-Control-Allow-Headers").orElse("");
            for (String h : List.of("Authorization", "Content-Type", "x-stainless-os")) {
                assertTrue(allowed.contains(h), allowed);
            }
            assertTrue(pre.headers().firstValue("Access-Control-Max-Age").isPresent());
            HttpResponse<String> denied = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models"))
                    .header("Origin", "https://app.example").GET().build(), HttpResponse.BodyHandlers.ofString());
            assertError(denied, 401, "API key");
            assertEquals("*", denied.headers().firstValue("Access-Control-Allow-Origin").orElse(""),
                    "a browser can read the error too");
        }
        try (OpenAiServer one = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, null,
                List.of("https://app.example"))) {
            String base = "http://127.0.0.1:" + one.port();
            HttpResponse<String> mine = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models"))
                    .header("Origin", "https://app.example").GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, mine.statusCode(), mine.body());
            assertEquals("https://app.example", mine.headers().firstValue("Access-Control-Allow-Origin").orElse(""));
            assertEquals("Origin", mine.headers().firstValue("Vary").orElse(""));
            HttpResponse<String> other = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models"))
                    .header("Origin", "https://evil.example").GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, other.statusCode(), "CORS is the browser's to enforce; the answer just lacks the header");
            assertTrue(other.headers().firstValue("Access-Control-Allow-Origin").isEmpty());
            HttpResponse<String> otherPre = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                    .method("OPTIONS", HttpRequest.BodyPublishers.noBody()).header("Origin", "https://evil.example")
                    .header("Access-Control-Request-Method", "POST").build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(204, otherPre.statusCode());
            assertTrue(otherPre.headers().firstValue("Access-Control-Allow-Origin").isEmpty());
        }
        HttpResponse<String> plain = http.send(HttpRequest.newBuilder(uri("/v1/models")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertTrue(plain.headers().firstValue("Access-Control-Allow-Origin").isEmpty(), "no Origin, no CORS headers");
    }

    /** 400 with {@code param} naming the field, which the message names too. */
    /**
     * Review findings: a body sent as a form or as text is not JSON (FastAPI parses only JSON types,
     * and a browser sends those cross-site without a preflight); best_of must be an integer >= n;
     * stream_options must be an object. Each is a 400 naming its field.
     */
    @Test
    void nonJsonBodiesAndMalformedOptionsAreRefused() throws Exception {
        String body = "{\"prompt\": [5, 17], \"max_tokens\": 1}";
        for (String type : List.of("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x")) {
            assertError(http.send(HttpRequest.newBuilder(uri("/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body))
                    .header("Content-Type", type).build(), HttpResponse.BodyHandlers.ofString()), 400, "Content-Type");
        }
        for (String type : List.of("application/json; charset=utf-8", "application/vnd.api+json")) {
            ok(http.send(HttpRequest.newBuilder(uri("/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body))
                    .header("Content-Type", type).build(), HttpResponse.BodyHandlers.ofString()));
        }
        ok(http.send(HttpRequest.newBuilder(uri("/v1/completions")).POST(HttpRequest.BodyPublishers.ofString(body)).build(),
                HttpResponse.BodyHandlers.ofString())); // no Content-Type: JSON, as FastAPI takes it
        for (String bestOf : List.of("\"x\"", "0", "-3", "1.5")) {
            assertParam(post("/v1/completions", "{\"prompt\": [5], \"max_tokens\": 1, \"best_of\": " + bestOf + "}"),
                    "best_of");
        }
        assertParam(post("/v1/completions", "{\"prompt\": [5], \"max_tokens\": 1, \"n\": 3, \"best_of\": 2}"), "best_of");
        ok(post("/v1/completions", "{\"prompt\": [5], \"max_tokens\": 1, \"n\": 2, \"best_of\": 2}"));
        for (String options : List.of("5", "\"x\"", "[1]")) {
            assertParam(post("/v1/completions", "{\"prompt\": [5], \"max_tokens\": 1, \"stream\": true, "
                    + "\"stream_options\": " + options + "}"), "stream_options");
        }
        // Errors that named no field, or the gRPC one: they name what the client sent.
        assertEquals("prompt", JSON.readTree(post("/v1/completions", "{\"prompt\": [5, 999999], \"max_tokens\": 1}")
                .body()).path("error").path("param").asText());
        String tools = "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"f\", \"parameters\": %s}}]";
        assertEquals("tool_choice", JSON.readTree(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", "
                + String.format(tools, "{}") + ", \"tool_choice\": {\"type\": \"function\", \"function\": "
                + "{\"name\": \"missing\"}}}").body()).path("error").path("param").asText());
        assertEquals("tools", JSON.readTree(post("/v1/chat/completions", "{" + CHAT_MESSAGES + ", "
                + String.format(tools, "5") + "}").body()).path("error").path("param").asText());
        // Responses: malformed reasoning and text are refused, and format errors name text.format.
        String input = "\"input\": \"hi\", \"max_output_tokens\": 2, ";
        assertEquals("reasoning.effort", JSON.readTree(post("/v1/responses", "{" + input
                + "\"reasoning\": {\"effort\": \"ultra\"}}").body()).path("error").path("param").asText());
        assertEquals("reasoning", JSON.readTree(post("/v1/responses", "{" + input + "\"reasoning\": \"x\"}").body())
                .path("error").path("param").asText());
        assertEquals("text", JSON.readTree(post("/v1/responses", "{" + input + "\"text\": 5}").body())
                .path("error").path("param").asText());
        assertEquals("text.format", JSON.readTree(post("/v1/responses", "{" + input + "\"text\": {\"format\": "
                + "{\"type\": \"json_schema\", \"name\": \"x\", \"schema\": {\"type\": \"foo\"}}}}").body())
                .path("error").path("param").asText());
        ok(post("/v1/responses", "{" + input + "\"reasoning\": {\"effort\": \"low\"}}"));
        assertEquals("tokens", JSON.readTree(post("/detokenize", "{\"tokens\": [99999999]}").body())
                .path("error").path("param").asText());
        assertError(post("/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": "
                + "[{\"type\": \"text\"}]}]}"), 400, "needs its 'text' as a string");
    }

    private static void assertParam(HttpResponse<String> r, String param) throws Exception {
        assertEquals(400, r.statusCode(), r.body());
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertEquals(param, e.path("param").asText(), e.toString());
        assertTrue(e.path("message").asText().contains(param), e.toString());
    }

    private static void assertError(HttpResponse<String> r, int status, String mentions) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertTrue(e.get("message").asText().contains(mentions), e.toString());
        assertEquals(status, e.get("code").asInt());
    }

    /**
     * Two streams fill the batch and a request of two prompts fills the queue: the next request is 429.
     * Streams whose clients disconnect are cancelled, so their slots free up and the waiting prompts
     * run; when that client leaves too, both of its prompts end.
     */
    @Test
    void overloadIs429AndAClientThatLeavesFreesItsSlot() throws Exception {
        awaitIdle();
        String endless = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 19000, \"ignore_eos\": true, \"stream\": true}";
        List<InputStream> running = new ArrayList<>();
        for (int i = 0; i < 2; i++) {
            HttpResponse<InputStream> r = http.send(HttpRequest.newBuilder(uri("/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString(endless)).build(), HttpResponse.BodyHandlers.ofInputStream());
            assertEquals(200, r.statusCode());
            new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8)).readLine(); // streaming
            running.add(r.body());
        }
        String twoPrompts = endless.replace("\"Once upon a time\"", "[\"Once upon a time\", \"Far away\"]");
        CompletableFuture<HttpResponse<InputStream>> waiting = http.sendAsync(HttpRequest.newBuilder(uri("/v1/completions"))
                .POST(HttpRequest.BodyPublishers.ofString(twoPrompts)).build(), HttpResponse.BodyHandlers.ofInputStream());
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (coordinator.scheduler().waiting() < 2 && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(2, coordinator.scheduler().waiting(), "the two prompts fill the queue");
        assertError(post("/v1/completions", "{\"prompt\": \"hi\", \"max_tokens\": 1}"), 429, "queue is full");
        for (InputStream in : running) {
            in.close();
        }
        HttpResponse<InputStream> admitted = waiting.get(30, TimeUnit.SECONDS);
        assertEquals(200, admitted.statusCode());
        admitted.body().close();
        deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while ((coordinator.scheduler().running() > 0 || coordinator.scheduler().waiting() > 0)
                && System.nanoTime() < deadline) {
            Thread.sleep(10);
        }
        assertEquals(0, coordinator.scheduler().running(), "a disconnected stream still holds its slot");
        assertEquals(0, coordinator.scheduler().waiting());
    }

    /**
     * Clients that leave before their answer (non-streaming ones, and a streaming one still queued)
     * cancel their requests: the batch slots and the queue place free up, as in vLLM. Two endless
     * requests fill the batch and a third waits; then all three clients close their connections.
     */
    @Test
    void clientsThatLeaveBeforeTheirAnswerFreeTheirSlots() throws Exception {
        awaitIdle();
        String endless = "{\"prompt\": \"Once upon a time\", \"max_tokens\": 19000, \"ignore_eos\": true";
        List<java.net.Socket> clients = new ArrayList<>();
        try {
            clients.add(rawPost("/v1/completions", endless + "}"));
            clients.add(rawPost("/v1/chat/completions", "{" + CHAT_MESSAGES + ", \"max_tokens\": 19000, \"ignore_eos\": true}"));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (coordinator.scheduler().running() < 2 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertEquals(2, coordinator.scheduler().running(), "two endless answers run");
            clients.add(rawPost("/v1/completions", endless + ", \"stream\": true}"));
            while (coordinator.scheduler().waiting() < 1 && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            assertEquals(1, coordinator.scheduler().waiting(), "the stream waits for a slot");
        } finally {
            for (java.net.Socket c : clients) {
                c.close();
            }
        }
        waitFor(() -> coordinator.scheduler().running() == 0 && coordinator.scheduler().waiting() == 0);
        assertEquals(0, coordinator.scheduler().running(), "a client that left still holds a batch slot");
        assertEquals(0, coordinator.scheduler().waiting(), "a client that left still holds a queue place");
    }

    /** Sends a request on a connection of its own and reads nothing: the caller closes it. */
    private static java.net.Socket rawPost(String path, String body) throws IOException {
        java.net.Socket socket = new java.net.Socket("127.0.0.1", server.port());
        byte[] b = body.getBytes(StandardCharsets.UTF_8);
        socket.getOutputStream().write(("POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                + "Content-Type: application/json\r\nContent-Length: " + b.length + "\r\n\r\n")
                .getBytes(StandardCharsets.US_ASCII));
        socket.getOutputStream().write(b);
        socket.getOutputStream().flush();
        return socket;
    }

    /** Waits up to 30 s for {@code done}. */
    private static void waitFor(java.util.function.BooleanSupplier done) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!done.getAsBoolean() && System.nanoTime() < deadline) {
            Thread.sleep(5);
        }
    }

    @Test
    void tokenizeAndDetokenizeAsVllm() throws Exception {
        JsonNode t = ok(post("/tokenize", "{\"model\": \"" + model + "\", " + CHAT_MESSAGES + "}"));
        List<Integer> expected = grpc.tokenize(dev.epic.proto.TokenizeRequest.newBuilder().setChat(chat())
                .setAddGenerationPrompt(true).build()).getTokenIdsList();
        List<Integer> got = new ArrayList<>();
        t.get("tokens").forEach(n -> got.add(n.asInt()));
        assertEquals(expected, got);
        assertEquals(expected.size(), t.get("count").asInt());
        assertEquals(MAX_CONTEXT, t.get("max_model_len").asInt());
        JsonNode plain = ok(post("/tokenize", "{\"prompt\": \"Hello there\"}"));
        JsonNode d = ok(post("/detokenize", "{\"tokens\": " + plain.get("tokens") + "}"));
        assertEquals(0, plain.get("tokens").get(0).asInt(), "BOS first, as vLLM tokenizes with add_special_tokens");
        assertEquals("<｜begin▁of▁sentence｜>Hello there", d.get("prompt").asText());
        assertError(post("/detokenize", "{\"tokens\": [99999999]}"), 400, "vocabulary");
    }

    /** With an API key, everything but /health needs it as a bearer token. */
    @Test
    void anApiKeyGuardsTheApi() throws Exception {
        try (OpenAiServer guarded = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), "served-name", "s3cret")) {
            String base = "http://127.0.0.1:" + guarded.port();
            HttpRequest.Builder models = HttpRequest.newBuilder(URI.create(base + "/v1/models")).GET();
            HttpResponse<String> none = http.send(models.build(), HttpResponse.BodyHandlers.ofString());
            assertError(none, 401, "API key");
            assertEquals("Bearer", none.headers().firstValue("WWW-Authenticate").orElse(""));
            assertError(http.send(models.copy().header("Authorization", "Bearer wrong").build(),
                    HttpResponse.BodyHandlers.ofString()), 401, "API key");
            HttpResponse<String> ok = http.send(models.copy().header("Authorization", "bearer s3cret").build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, ok.statusCode(), ok.body());
            assertEquals("served-name", JSON.readTree(ok.body()).get("data").get(0).get("id").asText());
            assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                    .POST(HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\"}")).build(),
                    HttpResponse.BodyHandlers.ofString()), 401, "API key");
            for (String probe : new String[] {"/health", "/health/"}) {
                assertEquals(200, http.send(HttpRequest.newBuilder(URI.create(base + probe)).GET().build(),
                        HttpResponse.BodyHandlers.ofString()).statusCode(), "probes need no key");
            }
            assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models/../health")).GET().build(),
                    HttpResponse.BodyHandlers.ofString()), 401, "API key");
        }
        try (OpenAiServer newline = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, "s3cret\n")) {
            assertEquals(200, http.send(HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + newline.port()
                    + "/v1/models")).header("Authorization", "Bearer s3cret").GET().build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode(), "a key read from a file ends in a newline");
        }
        IllegalArgumentException blank = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                () -> OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, " "));
        assertTrue(blank.getMessage().contains("blank"), blank.getMessage());
    }

    /** Once the coordinator drains, new requests get a 503 saying so (not a bare transport error). */
    @Test
    void aShuttingDownFrontSaysSo() throws Exception {
        try (OpenAiServer front = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, null)) {
            front.shutDown();
            String base = "http://127.0.0.1:" + front.port();
            assertError(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions")).POST(
                    HttpRequest.BodyPublishers.ofString("{\"prompt\": \"hi\", \"max_tokens\": 1}")).build(),
                    HttpResponse.BodyHandlers.ofString()), 503, "shutting down");
            assertEquals(200, http.send(HttpRequest.newBuilder(URI.create(base + "/health")).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).statusCode(), "health still answers (the coordinator's)");
        }
    }

    /**
     * Several served names, as vLLM's --served-model-name takes them: /v1/models lists each, a request may
     * name any, answers carry the first, and another name is a 404 that lists them.
     */
    @Test
    void servedNamesAreAliases() throws Exception {
        try (OpenAiServer aliased = OpenAiServer.start("127.0.0.1", 0, coordinator.target(),
                List.of("deepseek-r1", "deepseek-ai/DeepSeek-R1", "deepseek-r1"), null, OpenAiServer.ALL_ORIGINS, null)) {
            String base = "http://127.0.0.1:" + aliased.port();
            JsonNode models = JSON.readTree(http.send(HttpRequest.newBuilder(URI.create(base + "/v1/models")).GET().build(),
                    HttpResponse.BodyHandlers.ofString()).body());
            assertEquals(2, models.get("data").size(), "each name once: " + models);
            assertEquals("deepseek-r1", models.get("data").get(0).get("id").asText());
            assertEquals("deepseek-ai/DeepSeek-R1", models.get("data").get(1).get("id").asText());
            HttpResponse<String> one = http.send(HttpRequest.newBuilder(URI.create(base
                    + "/v1/models/deepseek-ai/DeepSeek-R1")).GET().build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, one.statusCode(), one.body());
            assertEquals(models.get("data").get(1), JSON.readTree(one.body()));
            HttpResponse<String> done = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\": \"deepseek-ai/DeepSeek-R1\", \"prompt\": \"Hello\", \"max_tokens\": 2}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertEquals(200, done.statusCode(), done.body());
            assertEquals("deepseek-r1", JSON.readTree(done.body()).get("model").asText(), "answers carry the first");
            HttpResponse<String> other = http.send(HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                    .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(
                            "{\"model\": \"gpt-4\", \"prompt\": \"Hello\", \"max_tokens\": 2}")).build(),
                    HttpResponse.BodyHandlers.ofString());
            assertError(other, 404, "`deepseek-r1`, `deepseek-ai/DeepSeek-R1`");
        }
        assertThrows(IllegalArgumentException.class, () -> OpenAiServer.start("127.0.0.1", 0, coordinator.target(),
                List.of("a", " "), null, OpenAiServer.ALL_ORIGINS, null));
    }

    @Test
    void modelsAndHealth() throws Exception {
        JsonNode models = JSON.readTree(http.send(HttpRequest.newBuilder(uri("/v1/models")).GET().build(),
                HttpResponse.BodyHandlers.ofString()).body());
        assertEquals("list", models.get("object").asText());
        assertEquals(model, models.get("data").get(0).get("id").asText());
        assertEquals(MAX_CONTEXT, models.get("data").get(0).get("max_model_len").asInt());
        long created = models.get("data").get(0).get("created").asLong();
        assertTrue(Math.abs(created - System.currentTimeMillis() / 1000) < 3600, "the server's start: " + created);
        // OpenAI's retrieve model: the same object, and 404 for another name.
        HttpResponse<String> one = http.send(HttpRequest.newBuilder(uri("/v1/models/" + model)).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, one.statusCode(), one.body());
        assertEquals(models.get("data").get(0), JSON.readTree(one.body()));
        assertError(http.send(HttpRequest.newBuilder(uri("/v1/models/gpt-4")).GET().build(),
                HttpResponse.BodyHandlers.ofString()), 404, "gpt-4");
        HttpResponse<String> health = http.send(HttpRequest.newBuilder(uri("/health")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
        assertEquals(200, health.statusCode(), health.body());
        assertEquals("SERVING", JSON.readTree(health.body()).get("status").asText());
    }
}
