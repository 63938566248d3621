package dev.epic.coordinator.scheduler;

/**
 * A sequence that could not run even alone: the KV cache it may reach (prompt + max new tokens) is
 * more than the scheduler's whole KV cache budget. The request's fault (INVALID_ARGUMENT), as a prompt
 * over the context is: a smaller max_tokens fits.
 */
public final class KvBudgetException extends IllegalArgumentException {
    public KvBudgetException(String message) {
        super(message);
    }
}
