package dev.epic.coordinator.scheduler;

/**
 * One sequence as the scheduler sees it: a prompt to prefill, then one token per step chosen by the
 * task from the logits of the position just computed. Every callback except {@link #cancelled()} runs
 * on the engine thread, one at a time.
 */
public interface SequenceTask {
    /** Prompt token ids (validated by the caller: non-empty, inside the vocabulary and the context). */
    int[] prompt();

    /**
     * The logits of the last position fed (the prompt's last token, then each chosen token).
     * Returns the next token to feed, or -1 when the sequence is finished.
     */
    int onLogits(float[] logits);

    /** Polled between steps from the engine thread; may turn true from any thread. */
    boolean cancelled();

    /** The sequence left the batch because {@link #cancelled()} turned true (or the scheduler closed). */
    void onCancelled();

    /** The step computing this sequence failed (e.g. expert workers unavailable); it has left the batch. */
    void onFailure(Throwable error);
}
