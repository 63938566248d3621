package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.StatsRequest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code epic local --prefix-cache-disk DIR}, real processes, stopped and started again: the second
 * cluster, with nothing in memory, starts a golden prompt from the blocks the first one wrote, and gives
 * the golden logits.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class PrefixCacheDiskIT {
    @Test
    void aRestartedClusterStartsAPromptFromTheBlocksOnDisk(@TempDir Path dir) throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4); // 300 tokens
        LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(0);
        IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
        String[] args = {"--model", TestData.model("tiny-v3").toString(), "--expert-workers", "1",
                "--prefix-cache-disk", dir.toString(), "--prefix-cache-disk-mb", "64"};
        for (int run = 0; run < 2; run++) {
            try (EpicLocal cluster = EpicLocal.start("prefix-disk-" + run, args)) {
                var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
                LogitsResponse r = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(req.build());
                float diff = Golden.maxAbsDiff(g.prefillLogits(), LogitsClusterIT.floats(r, 0));
                assertTrue(diff < Golden.LOGIT_TOL, "run " + run + ": " + diff + " from the golden logits");
                var stats = api.stats(StatsRequest.getDefaultInstance());
                assertEquals(run == 0 ? 0 : (300 - 1) / 16 * 16, stats.getPrefixHitTokens(),
                        "run " + run + (run == 0 ? ": nothing kept yet" : ": the blocks the first run wrote"));
                assertTrue(stats.getPrefixDisk());
                assertEquals(stats.getPrefixHitTokens(), stats.getPrefixDiskHitTokens(), "read back from disk");
            }
            try (Stream<Path> files = Files.walk(dir)) {
                assertEquals(300 / 16, files.filter(p -> p.toString().endsWith(".kvb")).count(),
                        "the prompt's whole blocks, written as they were kept and before the stop");
            }
        }
    }
}
