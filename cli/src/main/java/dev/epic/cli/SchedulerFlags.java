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

    SchedulerOptions options() {
        return new SchedulerOptions(maxBatch, maxQueue, prefillBudget);
    }
}
