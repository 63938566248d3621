package dev.epic.text.constrain;

import java.util.Set;

/**
 * Constrained decoding of one generation: before each sample the tokens that cannot come next are
 * masked out, and after it the chosen token moves the constraint on.
 */
public interface TokenConstraint {
    /**
     * Sets logits[id] = -inf for ids in [0, n) that cannot come next. The ids in {@code ends} (end of
     * sequence, stop tokens) are banned until the answer is complete, and allowed from then on.
     */
    void restrict(float[] logits, int n, Set<Integer> ends);

    /** Moves past a chosen token (end of sequence excluded). */
    void accept(int token);

    /** Whether the text so far is a whole answer. */
    boolean complete();
}
