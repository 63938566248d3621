package dev.epic.coordinator.scheduler;

/**
 * A sequence that could not run even alone: the KV cache it may reach (prompt + max new tokens) is
 * more than the scheduler's whole KV cache budget. The request's fault (INVALID_ARGUMENT), as a prompt
 * over the context is: a smaller max_tokens fits.
 */
public final class KvBudgetException extends IllegalArgumentException {
    /** The prompt alone does not fit: the prompt is at fault, not max_tokens. */
    private final boolean prompt;

    public KvBudgetException(boolean prompt, String message) {
        super(message);
        this.prompt = prompt;
    }

    /** The request field at fault, as a gRPC field path: {@code prompt} or {@code sampling.max_tokens}. */
    public String field() {
        return prompt ? "prompt" : "sampling.max_tokens";
    }
}
