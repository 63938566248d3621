package dev.epic.coordinator.scheduler;

/**
 * One sequence as the scheduler sees it: a prompt to prefill, then one token per step chosen by the
 * task from the logits of the position just computed. Every callback except {@link #cancelled()} and
 * {@link #choose} runs on the engine thread, one at a time.
 */
public interface SequenceTask {
    /** Prompt token ids (validated by the caller: non-empty, inside the vocabulary and the context). */
    int[] prompt();

    /**
     * The most positions this sequence's KV cache can hold before it ends (prompt + new tokens, within
     * the context): its cache never grows past it, and one that could not fit the KV cache budget alone
     * is refused.
     */
    long maxPositions();

    /**
     * The logits of the last position fed (the prompt's last token, then each chosen token).
     * Returns the next token to feed, or -1 when the sequence is finished. By default
     * {@code accept(choose(logits))}: a task implements either this or those two.
     */
    default int onLogits(float[] logits) {
        return accept(choose(logits));
    }

    /**
     * Whether {@link #choose} and {@link #accept} may replace {@link #onLogits}: the scheduler then
     * chooses the tokens of all such sequences of a step in parallel, on the kernel pool.
     */
    default boolean choosesInParallel() {
        return false;
    }

    /**
     * The token {@link #onLogits} would choose. Touches only this task's own state, so tasks may choose
     * on different threads at once.
     */
    default int choose(float[] logits) {
        throw new UnsupportedOperationException("choose needs choosesInParallel");
    }

    /**
     * Whether drafted tokens may be checked against this task's choices (speculative decoding): a draft
     * is kept where {@link #choose} picks it, so the tokens are those chosen without drafts (each choice
     * as it would be made then: the same greedy token, the same seeded draw). A task whose logits must
     * be seen position by position (a Logits request) does not.
     */
    default boolean verifiesDrafts() {
        return false;
    }

    /** What {@link #onLogits} does after choosing, on the engine thread: the next token, or -1 when finished. */
    default int accept(int token) {
        throw new UnsupportedOperationException("accept needs choosesInParallel");
    }

    /**
     * On joining the batch: the first {@code tokens} prompt tokens were found in the prefix cache and
     * will not be prefilled again (0 when none were).
     */
    default void promptCached(int tokens) {}

    /**
     * Sequences with the same prompt (the n samples of one request) share a group: with the prefix
     * cache on, the others wait until the first has prefilled, then start from its cached blocks
     * instead of all prefilling the same prompt in one step. Null: no group.
     */
    default Object prefixGroup() {
        return null;
    }

    /**
     * Whether the task wants the logits of every prompt position (prompt logprobs): its prompt is then
     * prefilled in full, never restored from the prefix cache, and each chunk's rows come to
     * {@link #onPromptLogits}.
     */
    default boolean wantsPromptLogits() {
        return false;
    }

    /** Logits of prompt positions start .. start + count - 1, [count x vocab] row-major. */
    default void onPromptLogits(int start, float[] rows, int count) {}

    /**
     * Its scheduling priority (vLLM's {@code priority}): lower joins first, and the highest is preempted
     * first; equal ones in arrival order. 0 unless the scheduler schedules by priority.
     */
    default int priority() {
        return 0;
    }

    /** Polled between steps from the engine thread; may turn true from any thread. */
    boolean cancelled();

    /** The sequence left the batch because {@link #cancelled()} turned true (or the scheduler closed). */
    void onCancelled();

    /** The step computing this sequence failed (e.g. expert workers unavailable); it has left the batch. */
    void onFailure(Throwable error);
}
