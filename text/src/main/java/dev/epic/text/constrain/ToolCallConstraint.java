package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import dev.epic.text.output.DeepSeekMarkers;
import java.util.Arrays;

/**
 * Forced tool calls (OpenAI's {@code tool_choice: "required"} or a named function): the answer is a
 * DeepSeek tool-call block of the {@link ToolCallGrammar}. Where the grammar has a marker, that
 * marker's token is the only choice; between markers a {@link CallCursor} masks the vocabulary, with
 * the marker tokens themselves left out by the mask (so none can appear inside a name or an
 * argument). Once the block is closed nothing may follow but what ends the generation.
 */
public final class ToolCallConstraint implements TokenConstraint {
    private enum Phase { BLOCK_OPEN, CALL_OPEN, TYPE, SEP, BODY, CALL_CLOSE, NEXT, DONE }

    private final Vocabulary vocab;
    private final ToolCallGrammar grammar;
    private final TokenMask<CallCursor> mask;
    private final CallCursor cursor;
    private final int callsBegin, callsEnd, callBegin, callEnd, sep;
    private Phase phase = Phase.BLOCK_OPEN;
    private int calls;

    /** @throws IllegalArgumentException if the vocabulary has no DeepSeek tool-call marker tokens */
    public ToolCallConstraint(Vocabulary vocab, ToolCallGrammar grammar) {
        this.vocab = vocab;
        this.grammar = grammar;
        this.mask = grammar.mask(vocab);
        this.cursor = new CallCursor(grammar);
        callsBegin = marker(vocab, DeepSeekMarkers.TOOL_CALLS_BEGIN);
        callsEnd = marker(vocab, DeepSeekMarkers.TOOL_CALLS_END);
        callBegin = marker(vocab, DeepSeekMarkers.TOOL_CALL_BEGIN);
        callEnd = marker(vocab, DeepSeekMarkers.TOOL_CALL_END);
        sep = marker(vocab, DeepSeekMarkers.TOOL_SEP);
    }

    private static int marker(Vocabulary vocab, String text) {
        return vocab.addedTokenId(text).orElseThrow(() -> new IllegalArgumentException(
                "this model's vocabulary has no " + text + " token, so it cannot be made to call tools"));
    }

    @Override
    public void mask(float[] logits, int n) {
        switch (phase) {
            case BLOCK_OPEN -> only(logits, n, callsBegin);
            case CALL_OPEN -> only(logits, n, callBegin);
            case SEP -> only(logits, n, sep);
            case CALL_CLOSE -> only(logits, n, callEnd);
            case NEXT -> {
                if (grammar.parallel) { // a newline to the next call, or the block's end
                    float end = callsEnd < n ? logits[callsEnd] : 0;
                    mask.restrict(cursor, logits, n);
                    if (callsEnd < n) {
                        logits[callsEnd] = end;
                    }
                } else {
                    only(logits, n, callsEnd);
                }
            }
            case TYPE, BODY -> mask.restrict(cursor, logits, n); // markers are never in the mask
            case DONE -> Arrays.fill(logits, 0, n, Float.NEGATIVE_INFINITY); // only what ends the generation (restrict)
        }
    }

    /** Everything but {@code token} is masked out. */
    private static void only(float[] logits, int n, int token) {
        float keep = token < n ? logits[token] : 0;
        Arrays.fill(logits, 0, n, Float.NEGATIVE_INFINITY);
        if (token < n) {
            logits[token] = keep;
        }
    }

    @Override
    public void accept(int token) {
        switch (phase) {
            case BLOCK_OPEN -> expect(token, callsBegin, Phase.CALL_OPEN);
            case CALL_OPEN -> {
                expect(token, callBegin, Phase.TYPE);
                cursor.startType();
            }
            case SEP -> {
                expect(token, sep, Phase.BODY);
                cursor.startBody();
            }
            case CALL_CLOSE -> {
                expect(token, callEnd, Phase.NEXT);
                calls++;
                if (grammar.parallel) {
                    cursor.startBetween();
                }
            }
            case NEXT -> {
                if (token == callsEnd) {
                    phase = Phase.DONE;
                } else if (step(token)) {
                    phase = Phase.CALL_OPEN;
                }
            }
            case TYPE -> {
                if (step(token)) {
                    phase = Phase.SEP;
                }
            }
            case BODY -> {
                if (step(token)) {
                    phase = Phase.CALL_CLOSE;
                }
            }
            case DONE -> throw new IllegalStateException("token " + token + " after the tool calls were closed");
        }
    }

    /** Moves the cursor past a token between markers; true when that part of the block is whole. */
    private boolean step(int token) {
        boolean open = phase != Phase.NEXT || grammar.parallel;
        if (!open || !mask.walks(token) || !cursor.step(vocab.tokenBytes(token))) {
            throw new IllegalStateException("token " + token + " cannot continue the tool calls");
        }
        return cursor.complete();
    }

    private void expect(int token, int wanted, Phase next) {
        if (token != wanted) {
            throw new IllegalStateException("token " + token + " where the tool calls need token " + wanted);
        }
        phase = next;
    }

    @Override
    public boolean complete() {
        return phase == Phase.DONE;
    }

    /** Calls closed so far. */
    public int calls() {
        return calls;
    }
}
