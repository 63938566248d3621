package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;

/**
 * Constrained decoding for one generation (OpenAI's JSON mode and JSON-schema response formats):
 * before each sample, every token that cannot continue the answer gets logit -inf (and the
 * generation allows end of sequence only once the answer is complete). The answer is therefore a JSON object (one
 * matching the schema), or a prefix of one if a length limit or stop string ends it.
 */
public final class JsonConstraint implements TokenConstraint {
    private final Vocabulary vocab;
    /** The schema's mask, shared by every generation with that schema, and this one's position. */
    private final TokenMask<SchemaCursor> mask;
    private final SchemaCursor cursor;

    /** A JSON value matching {@code schema} ({@link JsonSchema#ANY_OBJECT} for JSON mode). */
    public JsonConstraint(Vocabulary vocab, JsonSchema schema) {
        this.vocab = vocab;
        this.mask = schema.mask(vocab);
        this.cursor = new SchemaCursor(schema);
    }

    @Override
    public void mask(float[] logits, int n) {
        mask.restrict(cursor, logits, n);
    }

    @Override
    public void accept(int token) {
        if (!cursor.step(vocab.tokenBytes(token))) {
            throw new IllegalStateException("token " + token + " cannot continue the constrained answer");
        }
    }

    @Override
    public boolean complete() {
        return cursor.complete();
    }
}
