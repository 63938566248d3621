package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code epic local --prefix-cache-disk DIR}, real processes. A first cluster computes a golden prompt; a
 * second, started beside it on the same directory, starts that prompt from the blocks the first wrote;
 * both are stopped, and a third, with nothing in memory, starts from them too. Each gives the golden
 * logits.
 */
@Timeout(value = 300, unit = TimeUnit.SECONDS)
class PrefixCacheDiskIT {
    private static final int KEPT = (300 - 1) / 16 * 16; // the golden prompt's whole blocks, its last token aside

    @Test
    void clustersShareAndOutliveTheBlocksOnDisk(@TempDir Path dir) throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4); // 300 tokens
        LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(0);
        IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
        String[] args = {"--model", TestData.model("tiny-v3").toString(), "--expert-workers", "1",
                "--prefix-cache-disk", dir.toString(), "--prefix-cache-disk-mb", "64"};
        try (EpicLocal first = EpicLocal.start("prefix-disk-first", args)) {
            assertEquals(0, golden(first, g, req).getPrefixHitTokens(), "nothing kept yet");
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
            while (blockFiles(dir) < 300 / 16 && System.nanoTime() < deadline) {
                Thread.sleep(20); // written by a background thread as they are kept
            }
            assertEquals(300 / 16, blockFiles(dir), "the prompt's whole blocks, written as they were kept");
            try (EpicLocal second = EpicLocal.start("prefix-disk-second", args)) {
                StatsResponse s = golden(second, g, req);
                assertEquals(KEPT, s.getPrefixHitTokens(), "the blocks the first cluster wrote, beside it");
                assertEquals(KEPT, s.getPrefixDiskHitTokens(), "read from disk");
            }
        }
        try (EpicLocal third = EpicLocal.start("prefix-disk-third", args)) {
            StatsResponse s = golden(third, g, req);
            assertTrue(s.getPrefixDisk());
            assertEquals(KEPT, s.getPrefixDiskHitTokens(), "after both stopped");
        }
        assertEquals(300 / 16, blockFiles(dir), "each block written once");
    }

    /** Asks for the prompt's logits, checks them against the golden ones, and returns the cluster's stats. */
    private static StatsResponse golden(EpicLocal cluster, Golden.Prompt g, LogitsRequest.Builder req) {
        var api = GenerationServiceGrpc.newBlockingStub(cluster.channel);
        LogitsResponse r = api.withDeadlineAfter(60, TimeUnit.SECONDS).logits(req.build());
        float diff = Golden.maxAbsDiff(g.prefillLogits(), LogitsClusterIT.floats(r, 0));
        assertTrue(diff < Golden.LOGIT_TOL, diff + " from the golden logits");
        return api.stats(StatsRequest.getDefaultInstance());
    }

    private static long blockFiles(Path dir) throws Exception {
        try (Stream<Path> files = Files.walk(dir)) {
            return files.filter(p -> p.toString().endsWith(".kvb")).count();
        }
    }
}
