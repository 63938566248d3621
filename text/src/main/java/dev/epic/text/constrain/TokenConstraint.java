package dev.epic.text.constrain;

import java.util.Set;

/**
 * Constrained decoding of one generation: before each sample the tokens that cannot come next are
 * masked out, and after it the chosen token moves the constraint on.
 */
public interface TokenConstraint {
    /** Sets logits[id] = -inf for ids in [0, n) that cannot come next in the grammar. */
    void mask(float[] logits, int n);

    /**
     * {@link #mask}, and the ids in {@code ends} (end of sequence, stop tokens) banned until the
     * answer is {@link #complete()}, and left as they were from then on.
     */
    default void restrict(float[] logits, int n, Set<Integer> ends) {
        boolean whole = complete();
        float[] kept = new float[ends.size()];
        int i = 0;
        for (int id : ends) {
            kept[i++] = id >= 0 && id < n ? logits[id] : 0;
        }
        mask(logits, n);
        i = 0;
        for (int id : ends) {
            float k = kept[i++];
            if (id >= 0 && id < n) {
                logits[id] = whole ? k : Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** Moves past a chosen token (end of sequence excluded). */
    void accept(int token);

    /** Whether the text so far is a whole answer. */
    boolean complete();
}
