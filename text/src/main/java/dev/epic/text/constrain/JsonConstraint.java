package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import java.util.BitSet;
import java.util.Set;

/**
 * OpenAI's JSON mode for one generation: before each sample, every token that cannot continue a
 * JSON object gets logit -inf, and end of sequence is allowed only once the object is closed. The
 * answer is therefore a JSON object, or a prefix of one if a length limit or stop string ends it.
 */
public final class JsonConstraint {
    private final Vocabulary vocab;
    private final JsonMask mask;
    private final JsonCursor cursor = new JsonCursor();

    public JsonConstraint(Vocabulary vocab) {
        this.vocab = vocab;
        this.mask = JsonMask.of(vocab);
    }

    /**
     * Sets logits[id] = -inf for ids in [0, n) that cannot come next. The ids in {@code ends} (end of
     * sequence, stop tokens) are banned until the object is closed, and allowed from then on.
     */
    public void restrict(float[] logits, int n, Set<Integer> ends) {
        BitSet ok = mask.allowed(cursor);
        boolean closed = cursor.complete();
        for (int id = ok.nextClearBit(0); id < n; id = ok.nextClearBit(id + 1)) {
            if (!(closed && ends.contains(id))) {
                logits[id] = Float.NEGATIVE_INFINITY;
            }
        }
        if (!closed) {
            for (int id : ends) {
                if (id >= 0 && id < n) {
                    logits[id] = Float.NEGATIVE_INFINITY;
                }
            }
        }
    }

    /** Moves past a chosen token (end of sequence excluded). */
    public void accept(int token) {
        if (!cursor.step(vocab.tokenBytes(token))) {
            throw new IllegalStateException("token " + token + " cannot continue the JSON object");
        }
    }

    /** Whether the text so far is a whole JSON object. */
    public boolean complete() {
        return cursor.complete();
    }
}
