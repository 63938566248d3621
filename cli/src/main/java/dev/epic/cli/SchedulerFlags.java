package dev.epic.cli;

import dev.epic.coordinator.scheduler.SchedulerOptions;
import picocli.CommandLine.Option;

/** Batching flags of the serving commands. */
final class SchedulerFlags {
    @Option(names = "--max-batch", defaultValue = "" + SchedulerOptions.DEFAULT_MAX_BATCH, paramLabel = "N",
            description = "sequences decoded together in one step (default ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--max-queue", defaultValue = "" + SchedulerOptions.DEFAULT_MAX_QUEUE, paramLabel = "N",
            description = "requests waiting for a batch slot before RESOURCE_EXHAUSTED (default ${DEFAULT-VALUE})")
    int maxQueue;

    @Option(names = "--prefill-budget", defaultValue = "" + SchedulerOptions.DEFAULT_PREFILL_BUDGET, paramLabel = "TOKENS",
            description = "prompt tokens per step (chunked prefill; default ${DEFAULT-VALUE})")
    int prefillBudget;

    @Option(names = "--prefix-cache-mb", paramLabel = "MB", description = "latent KV kept for prompt prefixes "
            + "seen before, so a request that starts like an earlier one prefills only what is new; 0 turns it off "
            + "(default: a quarter of the JVM's maximum heap)")
    Long prefixCacheMb;

    SchedulerOptions options() {
        if (prefixCacheMb != null && prefixCacheMb < 0) {
            throw new IllegalArgumentException("--prefix-cache-mb must be >= 0, got " + prefixCacheMb);
        }
        long bytes = SchedulerOptions.defaults().prefixCacheBytes();
        if (prefixCacheMb != null) {
            try {
                bytes = Math.multiplyExact(prefixCacheMb, 1L << 20);
            } catch (ArithmeticException e) {
                throw new IllegalArgumentException("--prefix-cache-mb is too large: " + prefixCacheMb);
            }
        }
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget, bytes);
    }
}
