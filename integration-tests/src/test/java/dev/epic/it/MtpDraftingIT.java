package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.TokenIds;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code epic local --speculative-method mtp}, real processes: the coordinator drafts with the
 * checkpoint's MTP layer (its routed experts on the expert workers, which epic local starts with
 * --mtp-layer; its attention in the coordinator or on an attention worker), and the greedy tokens are
 * DeepSeek's reference tokens, as without drafts.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class MtpDraftingIT {
    @Test
    void greedyTokensThroughAClusterDraftingWithMtpAreTheReferenceTokens() throws Exception {
        List<Golden.Prompt> prompts = Golden.of("tiny-v3").prompts();
        try (EpicLocal cluster = EpicLocal.start("mtp-drafts", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "2", "--speculative-method", "mtp")) {
            // Warmed up before the JSON line: both workers before registering, then the coordinator.
            String log = Files.readString(cluster.log);
            assertEquals(2, log.split("compiled the expert kernels before serving", -1).length - 1, log);
            assertTrue(log.contains("forward warm-up: 26 steps"), log);
            var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
            int generated = 0;
            for (int p = 0; p < 3; p++) {
                generated += assertGreedyTokens(api, prompts.get(p), p);
            }
            StatsResponse stats = api.stats(StatsRequest.getDefaultInstance());
            assertEquals("mtp", stats.getSpeculativeMethod());
            assertEquals(1, stats.getNumSpeculativeTokens());
            // A draft each step after the first token of each request: a step gives one token and the
            // drafts kept, so the tokens after the first are the drafts and those kept (a request that
            // ends on its draft has it chosen, not kept: at most one a request more).
            long sum = stats.getDraftTokens() + stats.getAcceptedDraftTokens();
            assertTrue(sum >= generated - 3 && sum <= generated, sum + " drafted and chosen, " + generated + " tokens");
            // Both workers host their experts of the MTP layer, and the coordinator ran it on them.
            log = Files.readString(cluster.log);
            assertEquals(2, log.split("MoE layers and the MTP layer on cpu", -1).length - 1, log);
            assertTrue(log.contains("routed experts run on expert workers"), log);
            assertFalse(log.contains("routed experts run in this process"), log);
            JsonNode status = status(cluster);
            for (JsonNode w : status.get("expert_workers")) {
                assertTrue(w.get("mtp_layer").asBoolean(), status.toString());
            }
            assertEquals("", status.get("coverage").get("mtp_layer_missing").asText(), status.toString());
        }
    }

    /** {@code epic status --target … --json}, a process of its own. */
    private static JsonNode status(EpicLocal cluster) throws Exception {
        Process p = new ProcessBuilder(EpicLocal.java("status", "--target", cluster.target, "--json"))
                .redirectError(ProcessBuilder.Redirect.DISCARD).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "epic status did not finish");
        assertEquals(0, p.exitValue(), out);
        return new ObjectMapper().readTree(out);
    }

    /**
     * With attention on an attention worker process, which holds the MTP layer's KV and runs its
     * attention too: the greedy tokens are still the reference tokens, and the drafts are made and checked.
     */
    @Test
    void greedyTokensWithAttentionWorkersDraftingWithMtpAreTheReferenceTokens() throws Exception {
        List<Golden.Prompt> prompts = Golden.of("tiny-v3").prompts();
        try (EpicLocal cluster = EpicLocal.start("mtp-attention", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "1", "--attention-workers", "1", "--speculative-method", "mtp",
                "--num-speculative-tokens", "2")) {
            var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
            for (int p = 0; p < 2; p++) {
                assertGreedyTokens(api, prompts.get(p), p);
            }
            StatsResponse stats = api.stats(StatsRequest.getDefaultInstance());
            assertEquals("mtp", stats.getSpeculativeMethod());
            assertEquals(2, stats.getNumSpeculativeTokens());
            assertTrue(stats.getDraftTokens() > 0, "no drafts were made");
            String log = Files.readString(cluster.log);
            assertTrue(log.contains("layers and the MTP layer of"), "the attention worker runs the MTP layer's attention: "
                    + log);
        }
    }

    /** Generates the golden prompt greedily and checks its tokens are the reference's; returns how many. */
    private static int assertGreedyTokens(GenerationServiceGrpc.GenerationServiceBlockingStub api, Golden.Prompt g, int p) {
        TokenIds.Builder ids = TokenIds.newBuilder();
        IntStream.of(g.tokens()).forEach(ids::addIds);
        GenerateRequest req = GenerateRequest.newBuilder().setTokenIds(ids)
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setIgnoreEos(true)
                        .setMaxTokens(g.greedyTokens().length))
                .build();
        List<Integer> tokens = new ArrayList<>();
        api.withDeadlineAfter(60, TimeUnit.SECONDS).generate(req)
                .forEachRemaining((GenerateResponse r) -> tokens.addAll(r.getTokenIdsList()));
        assertEquals(Arrays.stream(g.greedyTokens()).boxed().toList(), tokens, "prompt " + p);
        return tokens.size();
    }
}
