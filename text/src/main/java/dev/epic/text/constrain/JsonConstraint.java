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

    /** Sets logits[id] = -inf for ids in [0, n) that cannot come next; {@code eos} only once the object is closed. */
    public void restrict(float[] logits, int n, Set<Integer> eos) {
        BitSet ok = mask.allowed(cursor);
        boolean end = cursor.complete();
        for (int id = ok.nextClearBit(0); id < n; id = ok.nextClearBit(id + 1)) {
            if (!(end && eos.contains(id))) {
                logits[id] = Float.NEGATIVE_INFINITY;
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
