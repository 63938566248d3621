package dev.epic.coordinator.scheduler;

import dev.epic.coordinator.experts.DispatchStats;

/**
 * What the scheduler's forward steps did since start, taken at the end of a step so that every
 * counter covers the same whole steps.
 *
 * @param steps       {@code Transformer.step} calls that succeeded
 * @param stepNanos   their total wall time
 * @param decodeRows  decode positions (one per running sequence per step)
 * @param prefillRows prompt positions fed in prefill chunks
 * @param experts     expert dispatch totals at the end of the last step; null when experts run in-process
 */
public record StepStats(long steps, long stepNanos, long decodeRows, long prefillRows, DispatchStats.Snapshot experts) {
    static final StepStats ZERO = new StepStats(0, 0, 0, 0, null);

    StepStats plus(long nanos, int decode, int prefill, DispatchStats.Snapshot expertsNow) {
        return new StepStats(steps + 1, stepNanos + nanos, decodeRows + decode, prefillRows + prefill, expertsNow);
    }
}
