package dev.epic.coordinator.scheduler;

/**
 * Limits of the continuous-batching scheduler.
 *
 * @param maxBatch         sequences decoding together (each holds a KV cache)
 * @param maxQueue         requests waiting for a batch slot; beyond it submissions are refused
 * @param prefillBudget    prompt tokens per step across all prefill chunks (chunked prefill), so one long
 *                         prompt cannot stall the decoding sequences for more than one bounded step
 * @param prefixCacheBytes latent KV kept for prompt prefixes seen before ({@link PrefixCache}); 0 turns it off
 * @param kvCacheBytes     KV cache the running sequences may hold together: a sequence joins the batch
 *                         when its prompt fits beside what the others hold, and the latest are preempted
 *                         (to be recomputed) when the caches would grow past it; one whose prompt + max new
 *                         tokens could not fit even alone is refused
 * @param speculation      draft tokens verified per decode step ({@link PromptLookup#OFF}: one token a step)
 * @param priorities       vLLM's {@code --scheduling-policy priority}: requests carry a priority (lower first),
 *                         waiting ones join in that order and the last in it are preempted first; otherwise
 *                         (fcfs) every request's priority must be 0
 * @param prefixDisk       the prefix cache's disk tier ({@code --prefix-cache-disk}), or null for none
 */
public record SchedulerOptions(int maxBatch, int maxQueue, int prefillBudget, long prefixCacheBytes, long kvCacheBytes,
        PromptLookup speculation, boolean priorities, PrefixDisk.Options prefixDisk) {
    public static final int DEFAULT_MAX_BATCH = 16;
    public static final int DEFAULT_MAX_QUEUE = 64;
    public static final int DEFAULT_PREFILL_BUDGET = 256;

    /** No prefix cache; the default KV cache budget. */
    public SchedulerOptions(int maxBatch, int maxQueue, int prefillBudget) {
        this(maxBatch, maxQueue, prefillBudget, 0);
    }

    /** The default KV cache budget. */
    public SchedulerOptions(int maxBatch, int maxQueue, int prefillBudget, long prefixCacheBytes) {
        this(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, defaultKvCacheBytes());
    }

    /** No speculative decoding. */
    public SchedulerOptions(int maxBatch, int maxQueue, int prefillBudget, long prefixCacheBytes, long kvCacheBytes) {
        this(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, kvCacheBytes, PromptLookup.OFF);
    }

    /** First come, first served. */
    public SchedulerOptions(int maxBatch, int maxQueue, int prefillBudget, long prefixCacheBytes, long kvCacheBytes,
            PromptLookup speculation) {
        this(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, kvCacheBytes, speculation, false);
    }

    /** No disk tier for the prefix cache. */
    public SchedulerOptions(int maxBatch, int maxQueue, int prefillBudget, long prefixCacheBytes, long kvCacheBytes,
            PromptLookup speculation, boolean priorities) {
        this(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, kvCacheBytes, speculation, priorities, null);
    }

    public SchedulerOptions {
        java.util.Objects.requireNonNull(speculation, "speculation (PromptLookup.OFF for none)");
        if (maxBatch < 1) {
            throw new IllegalArgumentException("max-batch must be >= 1, got " + maxBatch);
        }
        if (maxQueue < 0) {
            throw new IllegalArgumentException("max-queue must be >= 0, got " + maxQueue);
        }
        if (prefillBudget < 1) {
            throw new IllegalArgumentException("prefill budget must be >= 1 token, got " + prefillBudget);
        }
        if (prefixCacheBytes < 0) {
            throw new IllegalArgumentException("prefix cache size must be >= 0, got " + prefixCacheBytes);
        }
        if (kvCacheBytes < 1) {
            throw new IllegalArgumentException("KV cache budget must be > 0, got " + kvCacheBytes);
        }
    }

    public static long defaultKvCacheBytes() {
        return dev.epic.model.HeapKvCache.defaultBudgetBytes();
    }

    public SchedulerOptions withKvCacheBytes(long bytes) {
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, bytes, speculation, priorities, prefixDisk);
    }

    public SchedulerOptions withSpeculation(PromptLookup lookup) {
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, kvCacheBytes, lookup, priorities, prefixDisk);
    }

    /** Why a request cannot have {@code priority} here (it must be 0 unless scheduling by priority), or null when it can. */
    public String priorityRefusal(int priority) {
        return priority == 0 || priorities ? null : "must be 0: this coordinator serves first come, first served (a "
                + "priority of " + priority + " needs --scheduling-policy priority)";
    }

    /** Scheduling by the requests' priorities ({@code --scheduling-policy priority}), or first come, first served. */
    public SchedulerOptions withPriorities(boolean on) {
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, kvCacheBytes, speculation, on, prefixDisk);
    }

    /** With the prefix cache's disk tier {@code disk} (null: none). */
    public SchedulerOptions withPrefixDisk(PrefixDisk.Options disk) {
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget, prefixCacheBytes, kvCacheBytes, speculation,
                priorities, disk);
    }

    /** The serving defaults; the prefix cache may take a quarter of the heap. */
    public static SchedulerOptions defaults() {
        return new SchedulerOptions(DEFAULT_MAX_BATCH, DEFAULT_MAX_QUEUE, DEFAULT_PREFILL_BUDGET,
                Runtime.getRuntime().maxMemory() / 4);
    }
}
