package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.TestData;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.TokenIds;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code epic local} on testdata/tiny-v3 with one attention-worker process whose KV cache budget
 * ({@code --kv-cache-mb 1}, passed on by epic local: 1,638 positions of tiny-v3) cannot hold four
 * sequences of 500 positions at once. The coordinator accounts for the budget the worker announces
 * and preempts instead of failing: every sequence streams all its tokens, and Stats counts preemptions.
 * A request without max_tokens runs to the longest sequence the worker announces it can hold; one
 * whose max_tokens no worker could hold is INVALID_ARGUMENT.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class AttentionPreemptionIT {
    @Test
    void sequencesThatOutgrowTheAttentionWorkerArePreemptedAndAllFinish() throws Exception {
        try (EpicLocal cluster = EpicLocal.start("attention-preemption", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "1", "--attention-workers", "1", "--kv-cache-mb", "1", "--max-batch", "4");
                ExecutorService clients = Executors.newVirtualThreadPerTaskExecutor()) {
            var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
            int n = 4;
            int tokens = 497;
            List<Future<int[]>> answers = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                GenerateRequest req = GenerateRequest.newBuilder()
                        .setTokenIds(TokenIds.newBuilder().addIds(5).addIds(17).addIds(4 + i))
                        .setSampling(SamplingParams.newBuilder().setTemperature(0.8f).setSeed(i).setMaxTokens(tokens)
                                .setIgnoreEos(true))
                        .build();
                answers.add(clients.submit(() -> {
                    int count = 0;
                    FinishReason reason = FinishReason.FINISH_REASON_UNSPECIFIED;
                    Iterator<GenerateResponse> it = api.withDeadlineAfter(180, TimeUnit.SECONDS).generate(req);
                    while (it.hasNext()) {
                        GenerateResponse r = it.next();
                        count += r.getTokenIdsCount();
                        if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
                            reason = r.getFinishReason();
                        }
                    }
                    return new int[] {count, reason.getNumber()};
                }));
            }
            for (int i = 0; i < n; i++) {
                int[] a = answers.get(i).get(200, TimeUnit.SECONDS); // a failure (RESOURCE_EXHAUSTED) throws here
                assertEquals(tokens, a[0], "sequence " + i + " streams all its tokens");
                assertEquals(FinishReason.LENGTH.getNumber(), a[1], "sequence " + i);
            }
            // Without max_tokens a sequence runs to the longest the worker's budget holds, and ends there
            // with LENGTH, as vLLM's default runs to the end of the context.
            int count = 0;
            FinishReason reason = FinishReason.FINISH_REASON_UNSPECIFIED;
            var it = api.withDeadlineAfter(180, TimeUnit.SECONDS).generate(GenerateRequest.newBuilder()
                    .setTokenIds(TokenIds.newBuilder().addIds(5).addIds(17).addIds(4))
                    .setSampling(SamplingParams.newBuilder().setTemperature(0.8f).setSeed(9).setIgnoreEos(true))
                    .build());
            while (it.hasNext()) {
                GenerateResponse r = it.next();
                count += r.getTokenIdsCount();
                if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
                    reason = r.getFinishReason();
                }
            }
            assertEquals(FinishReason.LENGTH, reason);
            assertEquals((1 << 20) / 640 - 3, count, "1 MiB of 640-byte positions, less the prompt");
            // One that no worker could hold even alone is refused up front, naming the flag.
            io.grpc.StatusRuntimeException tooLong = org.junit.jupiter.api.Assertions.assertThrows(
                    io.grpc.StatusRuntimeException.class, () -> api.withDeadlineAfter(30, TimeUnit.SECONDS).generate(
                            GenerateRequest.newBuilder().setTokenIds(TokenIds.newBuilder().addIds(5).addIds(17))
                                    .setSampling(SamplingParams.newBuilder().setMaxTokens(5000)).build()).hasNext());
            assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, tooLong.getStatus().getCode(), tooLong.toString());
            assertTrue(tooLong.getStatus().getDescription().contains("--kv-cache-mb"), tooLong.toString());
            // So is a Logits call whose steps no worker could hold.
            io.grpc.StatusRuntimeException tooManySteps = org.junit.jupiter.api.Assertions.assertThrows(
                    io.grpc.StatusRuntimeException.class, () -> api.withDeadlineAfter(30, TimeUnit.SECONDS).logits(
                            dev.epic.proto.LogitsRequest.newBuilder().addPromptTokenIds(5).addPromptTokenIds(17)
                                    .setSteps(5000).build()));
            assertEquals(io.grpc.Status.Code.INVALID_ARGUMENT, tooManySteps.getStatus().getCode(), tooManySteps.toString());
            assertTrue(tooManySteps.getStatus().getDescription().contains("--kv-cache-mb"), tooManySteps.toString());
            StatsResponse stats = api.stats(StatsRequest.getDefaultInstance());
            assertTrue(stats.getPreemptions() >= 1, "preemptions: " + stats.getPreemptions());
            assertEquals(0, stats.getAttentionSequencesLost());
            assertEquals(0, stats.getRunning());
        }
    }
}
