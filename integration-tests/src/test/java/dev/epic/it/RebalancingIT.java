package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.WorkerAnnouncement;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * Online expert rebalancing through real processes: {@code epic local} with redundant slots on its
 * two workers replans the placement every second from the load it sees; the workers load and
 * announce the experts placed on them, and the logits stay the reference's, bit for bit the same as
 * before the experts moved.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class RebalancingIT {
    @Test
    void workersTakeRedundantExpertsAndTheLogitsDoNotMove() throws Exception {
        try (EpicLocal cluster = EpicLocal.start("rebalancing", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "2", "--redundant-slots", "8", "--rebalance-seconds", "1", "--prefix-cache-mb", "0",
                "--skip-warmup")) { // the first placement must come from this test's load, not the warm-up's
            String log = Files.readString(cluster.log);
            assertFalse(log.contains("compiled the expert kernels") || log.contains("forward warm-up"), log);
            var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
            Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
            LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(12);
            IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
            LogitsResponse before = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(req.build());
            check(g, before);

            // The 300-token prompt is the load of the first window; a placement follows within seconds.
            for (int attempt = 0; redundant(api) == 0; attempt++) {
                assertTrue(attempt < 300, "no worker announced redundant experts");
                Thread.sleep(100);
            }
            LogitsResponse after = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(req.build());
            check(g, after);
            for (int k = 0; k <= 12; k++) {
                assertArrayEquals(LogitsClusterIT.floats(before, k), LogitsClusterIT.floats(after, k), "step " + k);
            }
        }
    }

    private static int redundant(GenerationServiceGrpc.GenerationServiceBlockingStub api) {
        int n = 0;
        for (WorkerAnnouncement w : api.modelInfo(ModelInfoRequest.getDefaultInstance()).getExpertWorkersList()) {
            assertEquals(8, w.getRedundantSlots());
            n += w.getRedundantList().stream().mapToInt(l -> l.getExpertsCount()).sum();
        }
        return n;
    }

    private static void check(Golden.Prompt g, LogitsResponse r) {
        assertEquals(13, r.getStepsCount());
        assertTrue(Golden.maxAbsDiff(g.prefillLogits(), LogitsClusterIT.floats(r, 0)) < Golden.LOGIT_TOL, "prefill");
        for (int k = 0; k < 12; k++) {
            assertEquals(g.greedyTokens()[k], r.getSteps(k).getArgmax(), "greedy token " + k);
            assertTrue(Golden.maxAbsDiff(g.stepLogits()[k], LogitsClusterIT.floats(r, k + 1)) < Golden.LOGIT_TOL, "step " + k);
        }
    }
}
