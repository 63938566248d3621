package dev.epic.coordinator.scheduler;

/**
 * What the scheduler's forward steps did since start.
 *
 * @param steps       {@code Transformer.step} calls that succeeded
 * @param stepNanos   their total wall time
 * @param decodeRows  decode positions (one per running sequence per step)
 * @param prefillRows prompt positions fed in prefill chunks
 */
public record StepStats(long steps, long stepNanos, long decodeRows, long prefillRows) {
    static final StepStats ZERO = new StepStats(0, 0, 0, 0);

    StepStats plus(long nanos, int decode, int prefill) {
        return new StepStats(steps + 1, stepNanos + nanos, decodeRows + decode, prefillRows + prefill);
    }
}
