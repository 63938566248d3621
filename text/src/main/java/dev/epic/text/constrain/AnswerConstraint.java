package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;

/**
 * Constrained decoding of a whole answer by one byte automaton (OpenAI's JSON mode and JSON-schema
 * response formats, vLLM's guided regex, choice and grammar): before each sample, every token that cannot
 * continue the answer gets logit -inf (and the generation allows end of sequence only once the answer
 * is complete). The answer therefore matches, or is a prefix of a match if a length limit or stop
 * string ends it.
 */
public final class AnswerConstraint<A extends ByteAutomaton<A>> implements TokenConstraint {
    private final Vocabulary vocab;
    /** The grammar's mask, shared by every generation with that grammar, and this one's position. */
    private final TokenMask<A> mask;
    private final A cursor;

    private AnswerConstraint(Vocabulary vocab, TokenMask<A> mask, A start) {
        this.vocab = vocab;
        this.mask = mask;
        this.cursor = start;
    }

    /** A JSON value matching {@code schema} ({@link JsonSchema#ANY_OBJECT} for JSON mode). */
    public static AnswerConstraint<SchemaCursor> json(Vocabulary vocab, JsonSchema schema) {
        return new AnswerConstraint<>(vocab, schema.mask(vocab), new SchemaCursor(schema));
    }

    /** Text in {@code pattern}'s language. */
    public static AnswerConstraint<TextCursor> text(Vocabulary vocab, TextPattern pattern) {
        return new AnswerConstraint<>(vocab, pattern.mask(vocab), pattern.start());
    }

    /** Text that {@code start} walks, from where it is, under the grammar's shared {@code mask}. */
    static <A extends ByteAutomaton<A>> AnswerConstraint<A> of(Vocabulary vocab, TokenMask<A> mask, A start) {
        return new AnswerConstraint<>(vocab, mask, start);
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
