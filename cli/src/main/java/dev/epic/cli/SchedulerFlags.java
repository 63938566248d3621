package dev.epic.cli;

import dev.epic.coordinator.scheduler.PrefixDisk;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** Batching flags of the serving commands. */
final class SchedulerFlags {
    @Option(names = {"--max-batch", "--max-num-seqs"}, defaultValue = "" + SchedulerOptions.DEFAULT_MAX_BATCH,
            paramLabel = "N", description = "sequences decoded together in one step (--max-num-seqs: vLLM's name; "
            + "default ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--max-queue", defaultValue = "" + SchedulerOptions.DEFAULT_MAX_QUEUE, paramLabel = "N",
            description = "requests waiting for a batch slot before RESOURCE_EXHAUSTED (default ${DEFAULT-VALUE})")
    int maxQueue;

    @Option(names = "--prefill-budget", defaultValue = "" + SchedulerOptions.DEFAULT_PREFILL_BUDGET, paramLabel = "TOKENS",
            description = "prompt tokens per step (chunked prefill; default ${DEFAULT-VALUE})")
    int prefillBudget;

    @Option(names = "--prefix-cache-mb", paramLabel = "MB", description = "latent KV kept for prompt prefixes "
            + "seen before, so a request that starts like an earlier one prefills only what is new; with "
            + "--remote-attention kept on the attention workers, at most this much on each; 0 turns it off "
            + "(default: a quarter of the JVM's maximum heap)")
    Long prefixCacheMb;

    @Option(names = "--enable-prefix-caching", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "vLLM's switch: --no-enable-prefix-caching turns the prefix cache off, as --prefix-cache-mb 0 "
                    + "(default: on)")
    boolean enablePrefixCaching;

    @Option(names = "--prefix-cache-disk", paramLabel = "DIR", description = "also keep the prefix cache's blocks "
            + "in this directory (written as they are kept), so a prefix evicted from memory, or kept before a restart, "
            + "is read back instead of prefilled again; files are per model and weight format; coordinators sharing "
            + "the directory find each other's blocks; not with attention workers (default: memory only)")
    java.nio.file.Path prefixCacheDisk;

    @Option(names = "--prefix-cache-disk-mb", defaultValue = "10240", paramLabel = "MB", description = "the most the "
            + "--prefix-cache-disk directory holds; least recently used blocks are removed first (default ${DEFAULT-VALUE})")
    long prefixCacheDiskMb;

    @Option(names = "--kv-cache-mb", paramLabel = "MB", description = "KV cache the running sequences may hold "
            + "together; a request joins the batch when its prompt fits beside what the others hold, the latest "
            + "are preempted and recomputed when the caches outgrow it, and one that could not fit alone is "
            + "refused (default: half the JVM's maximum heap)")
    Long kvCacheMb;

    @Option(names = "--scheduling-policy", defaultValue = "fcfs", paramLabel = "fcfs|priority", description = "the "
            + "order requests are served in: fcfs, first come, first served; priority, by each request's priority "
            + "(lower first, then arrival; the highest is preempted first), as vLLM's (default ${DEFAULT-VALUE})")
    String schedulingPolicy;

    @Option(names = "--enable-two-batch-overlap", description = "run each step as two micro-batches (split "
            + "between sequences, or within a long chunk when attention runs in the coordinator), each one's "
            + "attention while the other's routed experts compute on the workers, as DeepSeek's inference system "
            + "and SGLang do: the same results, bit for bit; it can pay only where the coordinator and the workers "
            + "do not share cores (workers on other hosts), and costs where they do")
    boolean twoBatchOverlap;

    @Mixin
    KvCacheFlags kvCache;

    @Mixin
    SpeculationFlags speculation;

    SchedulerOptions options() {
        if (!enablePrefixCaching && prefixCacheMb != null && prefixCacheMb > 0) {
            throw new IllegalArgumentException("--no-enable-prefix-caching turns off the prefix cache that "
                    + "--prefix-cache-mb " + prefixCacheMb + " sizes: give one of them");
        }
        long prefix = !enablePrefixCaching ? 0 : prefixCacheMb != null ? Flags.mebibytes("--prefix-cache-mb", prefixCacheMb, 0)
                : SchedulerOptions.defaults().prefixCacheBytes();
        long kv = kvCacheMb != null ? Flags.mebibytes("--kv-cache-mb", kvCacheMb, 1) : SchedulerOptions.defaultKvCacheBytes();
        boolean priorities = switch (schedulingPolicy.toLowerCase(java.util.Locale.ROOT)) {
            case "fcfs" -> false;
            case "priority" -> true;
            default -> throw new IllegalArgumentException("--scheduling-policy must be fcfs or priority, got '"
                    + schedulingPolicy + "'");
        };
        PrefixDisk.Options disk = prefixCacheDisk == null ? null : new PrefixDisk.Options(prefixCacheDisk,
                Flags.mebibytes("--prefix-cache-disk-mb", prefixCacheDiskMb, 1), null); // named by the serving command
        if (disk != null && prefix == 0) {
            throw new IllegalArgumentException("--prefix-cache-disk needs the prefix cache, which "
                    + (enablePrefixCaching ? "--prefix-cache-mb 0" : "--no-enable-prefix-caching") + " turns off");
        }
        if (disk != null) { // checked before anything loads, rather than after the weights have
            try {
                java.nio.file.Files.createDirectories(prefixCacheDisk);
            } catch (java.io.IOException | RuntimeException e) {
                throw new IllegalArgumentException("--prefix-cache-disk " + prefixCacheDisk + " cannot be made a directory: "
                        + e, e);
            }
            if (!java.nio.file.Files.isWritable(prefixCacheDisk)) {
                throw new IllegalArgumentException("--prefix-cache-disk " + prefixCacheDisk + " is not writable");
            }
        }
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget, prefix, kv, speculation.lookup(), priorities, disk);
    }

    /** Refuses --prefix-cache-disk where the caches live on attention workers, before anything starts. */
    void requireLocalCachesForDisk(boolean attentionWorkers) {
        if (prefixCacheDisk != null && attentionWorkers) {
            throw new IllegalArgumentException("--prefix-cache-disk keeps the blocks of the coordinator's own caches: "
                    + "with attention workers the blocks are kept on them, in memory");
        }
    }
}
