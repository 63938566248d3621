package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.StatsRequest;
import java.nio.file.Files;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code epic local --attention-workers 1 --kv-cache-dtype bf16}, real processes: the attention worker
 * is started with the coordinator's dtype (a worker with another would be refused and the cluster would
 * not come up), its caches and kept prefix blocks are bf16, and the logits are the bits of the
 * in-process engine with bf16 caches, not the fp32 verifier's.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class Bf16KvCacheIT {
    @Test
    void aClusterWithBf16CachesComputesAsTheInProcessBf16Engine() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4); // 300 tokens
        float[] want;
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3"))) {
            Transformer local = Transformer.load(ck).kvCacheDtype(KvCacheDtype.BF16);
            KvCache cache = local.newCache();
            want = local.forward(cache, g.tokens());
        }
        try (EpicLocal cluster = EpicLocal.start("bf16-kv", "--model", TestData.model("tiny-v3").toString(),
                "--expert-workers", "1", "--attention-workers", "1", "--kv-cache-dtype", "bf16")) {
            String log = Files.readString(cluster.log);
            assertTrue(log.contains("compiled the attention kernels before serving: 208 MLA calls"), log);
            var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
            LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(0);
            IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
            for (int round = 0; round < 2; round++) { // the second starts from the blocks kept on the worker
                LogitsResponse r = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(req.build());
                float[] got = LogitsClusterIT.floats(r, 0);
                // The same bits, though the cluster prefills in chunks of its budget and the second round
                // starts from kept blocks (README "load invariance").
                assertArrayEquals(want, got, "round " + round + ": against the in-process bf16 engine");
                float fromFp32 = Golden.maxAbsDiff(g.prefillLogits(), got);
                assertTrue(fromFp32 > 10 * Golden.LOGIT_TOL, "round " + round + ": only " + fromFp32
                        + " from the fp32 reference: were the caches bf16?");
            }
            assertEquals((300 - 1) / 16 * 16, api.stats(StatsRequest.getDefaultInstance()).getPrefixHitTokens(),
                    "the second round started from kept blocks");
        }
    }
}
