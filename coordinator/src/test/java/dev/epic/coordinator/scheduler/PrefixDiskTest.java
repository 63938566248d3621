package dev.epic.coordinator.scheduler;

import static dev.epic.coordinator.scheduler.PrefixCacheTest.computed;
import static dev.epic.coordinator.scheduler.PrefixCacheTest.restoreAndCheck;
import static dev.epic.coordinator.scheduler.PrefixCacheTest.tokens;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The prefix cache's disk tier: blocks evicted from memory, or kept before a restart, are read back. */
class PrefixDiskTest {
    private static final int LAYERS = PrefixCacheTest.LAYERS;
    private static final int RANK = PrefixCacheTest.RANK;
    private static final int ROPE = PrefixCacheTest.ROPE;
    private static final int B = PrefixCache.BLOCK;
    private static final long BLOCK_BYTES = (long) LAYERS * B * (RANK + ROPE) * Float.BYTES;

    @TempDir
    Path dir;

    private PrefixDisk disk(long capacityBytes, String identity) {
        return PrefixDisk.open(new PrefixDisk.Options(dir, capacityBytes, identity), LAYERS, RANK, ROPE, KvCacheDtype.FP32);
    }

    /** A scheduler's options with a 64 MiB prefix cache and its disk tier in {@link #dir}. */
    private SchedulerOptions schedulerWithDisk() {
        return new SchedulerOptions(4, 4, 64, 64L << 20).withPrefixDisk(new PrefixDisk.Options(dir, 64L << 20, "tiny-v3 test"));
    }

    /** Runs {@code prompt} through a scheduler of these options, which keeps its blocks, and stops it. */
    private static void keepOnDisk(Checkpoint checkpoint, SchedulerOptions o, int[] prompt) throws Exception {
        try (Scheduler s = new Scheduler(Transformer.load(checkpoint), o).start()) {
            LogitsTask warm = new LogitsTask(prompt, 0);
            s.submit(warm);
            warm.result().get(60, TimeUnit.SECONDS);
        }
    }

    private List<Path> blockFiles() throws Exception {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.filter(p -> p.toString().endsWith(".kvb")).toList();
        }
    }

    /** A restart finds the blocks kept before it: the next run's prompt starts from them, with their values. */
    @Test
    void blocksKeptBeforeARestartAreReadBack() throws Exception {
        int[] system = tokens(1, 3 * B + 5);
        int[] first = java.util.stream.IntStream.concat(Arrays.stream(system), Arrays.stream(tokens(2, 20))).toArray();
        try (PrefixDisk d = disk(1 << 20, "model-a")) {
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            cache.store(first, computed(first));
            d.flush();
            assertEquals(4, d.writtenBlocks(), "73 tokens: four whole blocks");
            assertEquals(4, blockFiles().size());
        }
        try (PrefixDisk d = disk(1 << 20, "model-a")) {
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            int[] second = java.util.stream.IntStream.concat(Arrays.stream(system), Arrays.stream(tokens(3, 40))).toArray();
            assertEquals(3 * B, restoreAndCheck(cache, second), "the system prompt's three whole blocks");
            assertEquals(3 * B, cache.diskHitTokens());
            assertEquals(3 * cache.blockBytes(), cache.storedBytes(), "read back into memory");
            assertEquals(4 * B, restoreAndCheck(cache, first));
            assertEquals(4 * B, cache.diskHitTokens(), "three blocks from memory now, the fourth from disk");
            assertEquals(7 * B, cache.hitTokens());
        }
        try (PrefixDisk d = disk(1 << 20, "model-b")) { // another model's KV: nothing to find
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            assertEquals(0, restoreAndCheck(cache, first));
        }
    }

    /** Blocks evicted from memory are read back from disk, into the memory they fit in. */
    @Test
    void blocksEvictedFromMemoryComeBackFromDisk() throws Exception {
        try (PrefixDisk d = disk(1 << 20, "m")) {
            PrefixCache cache = new PrefixCache(3 * BLOCK_BYTES, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            int[] a = tokens(5, 2 * B + 1);
            int[] b = tokens(6, 2 * B + 1);
            cache.store(a, computed(a));
            cache.store(b, computed(b)); // a's second block leaves memory
            d.flush();
            assertEquals(2 * B, restoreAndCheck(cache, a), "its first block from memory, its second from disk");
            assertEquals(B, cache.diskHitTokens());
            assertEquals(3 * cache.blockBytes(), cache.storedBytes());
            assertEquals(2 * B, restoreAndCheck(cache, b));
            assertEquals(2 * B, cache.diskHitTokens(), "b's second block had gone for a's");

            // A memory budget of one block: the second block read from disk does not fit, and is restored all the same.
            PrefixCache small = new PrefixCache(BLOCK_BYTES, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            assertEquals(2 * B, restoreAndCheck(small, a));
            assertEquals(BLOCK_BYTES, small.storedBytes());
            HeapKvCache started = new HeapKvCache(LAYERS, RANK, ROPE, 10_000);
            small.restore(a, started);
            assertEquals(B, started.keptPositions(), "the page kept in memory is shared; the other is the cache's own");
            assertEquals(B, restoreAndCheck(small, Arrays.copyOf(a, B + 1)), "the block that fitted stays in memory");
            assertEquals(3 * B, small.diskHitTokens());
        }
    }

    /** A damaged file is a miss, and is removed; the blocks before it are restored. */
    @Test
    void aDamagedFileIsAMissAndIsRemoved() throws Exception {
        int[] a = tokens(9, 3 * B + 1);
        try (PrefixDisk d = disk(1 << 20, "m")) {
            new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d).store(a, computed(a));
        }
        List<Path> files = blockFiles();
        assertEquals(3, files.size());
        Path second;
        try (PrefixDisk d = disk(1 << 20, "m")) {
            byte[] root = d.root();
            byte[] first = PrefixDisk.next(root, Arrays.copyOfRange(a, 0, B));
            byte[] hash = PrefixDisk.next(first, Arrays.copyOfRange(a, B, 2 * B));
            second = d.directory().resolve(java.util.HexFormat.of().formatHex(hash) + ".kvb");
        }
        byte[] bytes = Files.readAllBytes(second);
        bytes[bytes.length / 2] ^= 1;
        Files.write(second, bytes);
        try (PrefixDisk d = disk(1 << 20, "m")) {
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            assertEquals(B, restoreAndCheck(cache, a), "the first block; the damaged second ends the hit");
            assertFalse(Files.exists(second));
        }
    }

    /** The directory keeps at most its capacity, least recently used files going first, also across a restart. */
    @Test
    void theDirectoryKeepsItsCapacityLeastRecentlyUsedFirst() throws Exception {
        long fileBytes;
        int[] a = tokens(11, B + 1);
        int[] b = tokens(12, B + 1);
        int[] c = tokens(13, B + 1);
        try (PrefixDisk d = disk(1 << 20, "m")) {
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            cache.store(a, computed(a));
            d.flush();
            fileBytes = d.storedBytes();
            Thread.sleep(20);
            cache.store(b, computed(b));
            d.flush();
        }
        try (PrefixDisk d = disk(1 << 20, "m")) { // a restart, and a used again: its file's time says so
            Thread.sleep(20);
            assertEquals(B, restoreAndCheck(new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d), a));
        }
        try (PrefixDisk d = disk(2 * fileBytes, "m")) { // another restart, with room for two files
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d);
            cache.store(c, computed(c)); // b was used least recently
            d.flush();
            assertEquals(2 * fileBytes, d.storedBytes());
            assertEquals(B, restoreAndCheck(new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d), a));
            assertEquals(0, restoreAndCheck(new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d), b));
            assertEquals(B, restoreAndCheck(new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, d), c));
        }
        assertEquals(2, blockFiles().size());
    }

    /**
     * Through the scheduler, a restart included: the first run keeps a 150-token head of a golden prompt,
     * and the second, with nothing in memory, starts the whole prompt from its blocks on disk and gives the
     * golden logits.
     */
    @Test
    void afterARestartAPromptFromBlocksOnDiskGivesTheGoldenLogits() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        int[] head = Arrays.copyOf(g.tokens(), 150);
        SchedulerOptions o = schedulerWithDisk();
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            keepOnDisk(checkpoint, o, head); // a first run, stopped
            try (Scheduler s = new Scheduler(Transformer.load(checkpoint), o).start()) {
                LogitsTask full = new LogitsTask(g.tokens(), 12);
                s.submit(full);
                SchedulerTest.check(g, full.result().get(60, TimeUnit.SECONDS));
                PrefixCache prefixes = (PrefixCache) s.prefixCache();
                assertEquals(150 / B * B, prefixes.hitTokens(), "the 150-token head's whole blocks");
                assertEquals(150 / B * B, prefixes.diskHitTokens());
                var registry = new io.micrometer.core.instrument.simple.SimpleMeterRegistry();
                dev.epic.coordinator.metrics.ServingMetrics.bind(registry, s);
                assertEquals(150 / B * B, registry.get("epic.prefix.cache.disk.hits").functionCounter().count());
                assertTrue(registry.get("epic.prefix.cache.disk.usage").gauge().value() > 0);
            }
        }
    }

    /**
     * A waiting prompt's blocks are read from disk off the engine thread, so the batch goes on stepping
     * meanwhile: with every block read taking 200 ms, a running sequence takes many steps between the
     * golden prompt's arrival and its start from its nine blocks (read on the engine thread, it would
     * take one at most), and the prompt still gives the golden logits.
     */
    @Test
    void aPromptWaitingForItsBlocksOnDiskLetsTheBatchStepMeanwhile() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        int[] head = Arrays.copyOf(g.tokens(), 150);
        SchedulerOptions o = schedulerWithDisk();
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            keepOnDisk(checkpoint, o, head); // a first run, stopped
            try (Scheduler s = new Scheduler(Transformer.load(checkpoint), o).start()) {
                LogitsTask running = new LogitsTask(tokens(21, 20), 2000);
                s.submit(running);
                while (s.steps() < 3) {
                    Thread.sleep(1);
                }
                ((PrefixCache) s.prefixCache()).disk().readDelayMillis = 200;
                long before = s.steps();
                LogitsTask full = new LogitsTask(g.tokens(), 12);
                s.submit(full);
                while (full.cachedPromptTokens() == 0 && !full.result().isDone()) {
                    Thread.sleep(1);
                }
                long during = s.steps() - before;
                assertTrue(during >= 10, "only " + during + " steps while its blocks were read");
                SchedulerTest.check(g, full.result().get(60, TimeUnit.SECONDS));
                assertEquals(150 / B * B, full.cachedPromptTokens());
                assertEquals(150 / B * B, ((PrefixCache) s.prefixCache()).diskHitTokens());
                running.cancel();
            }
        }
    }

    /**
     * The samples of one prompt (n > 1) read its blocks from disk once: the first reads them ahead, the
     * others wait for that read and then start from the blocks it put in memory.
     */
    @Test
    void theSamplesOfOnePromptReadItsBlocksOnce() throws Exception {
        Golden.Prompt g = Golden.of("tiny-v3").prompts().get(4);
        SchedulerOptions o = schedulerWithDisk();
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            keepOnDisk(checkpoint, o, g.tokens()); // a first run, stopped
            try (Scheduler s = new Scheduler(Transformer.load(checkpoint), o).start()) {
                Object group = new Object();
                List<CollectingSink> sinks = List.of(new CollectingSink(), new CollectingSink(), new CollectingSink());
                List<GenerationTask> samples = new java.util.ArrayList<>();
                for (int i = 0; i < sinks.size(); i++) {
                    samples.add(new GenerationTask(g.tokens(), new dev.epic.text.generate.Generation(
                            dev.epic.text.tokenizer.Tokenizer.deepSeekV3(), g.tokens(),
                            dev.epic.text.sampling.SamplingParams.builder().temperature(1.0).seed(5 + i).maxTokens(4)
                                    .ignoreEos(true).build()), sinks.get(i), group));
                }
                s.submitAll(samples);
                for (CollectingSink sink : sinks) {
                    assertEquals(4, sink.done.get(60, TimeUnit.SECONDS).tokenIds().length);
                }
                PrefixCache prefixes = (PrefixCache) s.prefixCache();
                assertEquals(3 * 288, prefixes.hitTokens(), "each sample started from the 18 kept blocks");
                assertEquals(18, prefixes.disk().readBlocks(), "read from disk once, by one sample");
            }
        }
    }

    /** Coordinators sharing a directory find the blocks each other writes, also after they opened it. */
    @Test
    void coordinatorsSharingADirectoryFindEachOthersBlocks() throws Exception {
        int[] a = tokens(31, 2 * B + 1);
        int[] b = tokens(32, 3 * B + 1);
        try (PrefixDisk one = disk(1 << 20, "m"); PrefixDisk two = disk(1 << 20, "m")) {
            PrefixCache first = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, one);
            PrefixCache second = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, two);
            first.store(a, computed(a));
            one.flush();
            assertEquals(2 * B, restoreAndCheck(second, a), "written by the other after this one opened");
            second.store(b, computed(b));
            two.flush();
            assertEquals(3 * B, restoreAndCheck(first, b));
            assertEquals(3, two.writtenBlocks(), "b's three blocks; a's, read back, were not written again");
        }
    }

    /** The capacity holds across coordinators once one indexes the directory again (as it does every so many writes). */
    @Test
    void theCapacityHoldsAcrossCoordinatorsSharingADirectory() throws Exception {
        long fileBytes;
        try (PrefixDisk probe = disk(1 << 20, "m")) {
            int[] p = tokens(40, B + 1);
            new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, probe).store(p, computed(p));
            probe.flush();
            fileBytes = probe.storedBytes();
        }
        try (PrefixDisk small = disk(3 * fileBytes, "m"); PrefixDisk big = disk(1 << 20, "m")) {
            for (int seed = 41; seed < 45; seed++) { // four more files by the other, each later than the first
                Thread.sleep(5);
                int[] p = tokens(seed, B + 1);
                new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, big).store(p, computed(p));
                big.flush();
            }
            assertEquals(5, blockFiles().size());
            small.index();
            assertEquals(3, blockFiles().size());
            assertEquals(3 * fileBytes, small.storedBytes());
            PrefixCache cache = new PrefixCache(1 << 20, LAYERS, RANK, ROPE, KvCacheDtype.FP32, small);
            assertEquals(0, restoreAndCheck(cache, tokens(40, B + 1)), "the least recently used went first");
            assertEquals(B, restoreAndCheck(cache, tokens(44, B + 1)));
        }
    }

    /** A temporary file is another coordinator's write in progress unless it is old: only old ones are removed. */
    @Test
    void onlyStaleTemporaryFilesAreRemoved() throws Exception {
        Path ns;
        try (PrefixDisk d = disk(1 << 20, "m")) {
            ns = d.directory();
        }
        Path fresh = Files.writeString(ns.resolve("ab.kvb.tmp-1-1"), "x");
        Path old = Files.writeString(ns.resolve("cd.kvb.tmp-1-2"), "x");
        Files.setLastModifiedTime(old, java.nio.file.attribute.FileTime.fromMillis(System.currentTimeMillis() - 3_600_000));
        disk(1 << 20, "m").close();
        assertTrue(Files.exists(fresh));
        assertFalse(Files.exists(old));
    }

    /** The disk tier needs the prefix cache in this process. */
    @Test
    void theDiskTierNeedsTheProcesssPrefixCache() throws Exception {
        SchedulerOptions o = new SchedulerOptions(4, 4, 64, 0).withPrefixDisk(new PrefixDisk.Options(dir, 1 << 20, "x"));
        try (Checkpoint checkpoint = Checkpoint.open(TestData.model("tiny-v3"))) {
            String why = assertThrows(IllegalArgumentException.class, () -> new Scheduler(Transformer.load(checkpoint), o))
                    .getMessage();
            assertTrue(why.contains("--prefix-cache-mb"), why);
        }
    }
}
