package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import java.util.BitSet;
import java.util.Collections;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * Constrained decoding for one generation (OpenAI's JSON mode and JSON-schema response formats):
 * before each sample, every token that cannot continue the answer gets logit -inf, and end of
 * sequence is allowed only once the answer is complete. The answer is therefore a JSON object (one
 * matching the schema), or a prefix of one if a length limit or stop string ends it.
 */
public final class JsonConstraint {
    private static final Map<Vocabulary, TokenMask<JsonCursor>> OBJECT_MASKS =
            Collections.synchronizedMap(new WeakHashMap<>());

    private final Vocabulary vocab;
    private final Walk<?> walk;

    /** A grammar's shared mask and this generation's position in it. */
    private record Walk<A extends ByteAutomaton<A>>(TokenMask<A> mask, A cursor) {
        BitSet allowed() {
            return mask.allowed(cursor);
        }
    }

    private JsonConstraint(Vocabulary vocab, Walk<?> walk) {
        this.vocab = vocab;
        this.walk = walk;
    }

    /** Any JSON object (OpenAI's JSON mode). */
    public static JsonConstraint object(Vocabulary vocab) {
        return new JsonConstraint(vocab, new Walk<>(OBJECT_MASKS.computeIfAbsent(vocab,
                v -> new TokenMask<>(v, JsonCursor::new)), new JsonCursor()));
    }

    /** A JSON value matching {@code schema}. */
    public static JsonConstraint schema(Vocabulary vocab, JsonSchema schema) {
        return new JsonConstraint(vocab, new Walk<>(schema.mask(vocab), new SchemaCursor(schema)));
    }

    /**
     * Sets logits[id] = -inf for ids in [0, n) that cannot come next. The ids in {@code ends} (end of
     * sequence, stop tokens) are banned until the answer is complete, and allowed from then on.
     */
    public void restrict(float[] logits, int n, Set<Integer> ends) {
        BitSet ok = walk.allowed();
        boolean closed = complete();
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
        if (!walk.cursor().step(vocab.tokenBytes(token))) {
            throw new IllegalStateException("token " + token + " cannot continue the constrained answer");
        }
    }

    /** Whether the text so far is a whole answer. */
    public boolean complete() {
        return walk.cursor().complete();
    }
}
