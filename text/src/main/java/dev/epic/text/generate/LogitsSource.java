package dev.epic.text.generate;

/**
 * A model seen from the generation loop: logits over the vocabulary for the next position.
 * Used by single-sequence drivers (CLI, tests); the cluster coordinator batches sequences itself and
 * drives {@link Generation} directly with logits it computed.
 */
public interface LogitsSource {
    /** Runs the whole prompt and returns the logits for the first generated token. */
    float[] prefill(int[] promptIds);

    /** Appends {@code token} (the one just sampled) and returns the logits for the following position. */
    float[] next(int token);
}
