package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import dev.epic.text.output.DeepSeekMarkers;
import java.util.BitSet;
import java.util.Set;

/**
 * Forced tool calls (OpenAI's {@code tool_choice: "required"} or a named function): the answer is a
 * DeepSeek tool-call block of the {@link ToolCallGrammar}. Where the grammar has a marker, that
 * marker's token is the only choice; between markers a {@link CallCursor} masks the vocabulary, with
 * the marker tokens themselves left out (so none can appear inside a name or an argument). End of
 * sequence is allowed only once the block is closed, and then nothing else is.
 */
public final class ToolCallConstraint implements TokenConstraint {
    private enum Phase { BLOCK_OPEN, CALL_OPEN, TYPE, SEP, BODY, CALL_CLOSE, NEXT, DONE }

    private final Vocabulary vocab;
    private final ToolCallGrammar grammar;
    private final TokenMask<CallCursor> mask;
    private final CallCursor cursor;
    private final int callsBegin, callsEnd, callBegin, callEnd, sep;
    /** Marker tokens of the vocabulary, never allowed between markers. */
    private final int[] markers;
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
        markers = DeepSeekMarkers.PARSED.stream().map(vocab::addedTokenId).filter(java.util.OptionalInt::isPresent)
                .mapToInt(java.util.OptionalInt::getAsInt).toArray();
    }

    private static int marker(Vocabulary vocab, String text) {
        return vocab.addedTokenId(text).orElseThrow(() -> new IllegalArgumentException(
                "this model's vocabulary has no " + text + " token, so it cannot be made to call tools"));
    }

    @Override
    public void restrict(float[] logits, int n, Set<Integer> ends) {
        switch (phase) {
            case BLOCK_OPEN -> only(logits, n, callsBegin);
            case CALL_OPEN -> only(logits, n, callBegin);
            case SEP -> only(logits, n, sep);
            case CALL_CLOSE -> only(logits, n, callEnd);
            case NEXT -> {
                if (grammar.parallel) {
                    between(logits, n, ends, callsEnd); // a newline to the next call, or the block's end
                } else {
                    only(logits, n, callsEnd);
                }
            }
            case TYPE, BODY -> between(logits, n, ends, -1);
            case DONE -> {
                for (int id = 0; id < n; id++) {
                    if (!ends.contains(id)) {
                        logits[id] = Float.NEGATIVE_INFINITY;
                    }
                }
            }
        }
    }

    /** The cursor's mask without markers or ends, plus {@code alsoAllowed} (if >= 0). */
    private void between(float[] logits, int n, Set<Integer> ends, int alsoAllowed) {
        BitSet ok = mask.allowed(cursor);
        for (int id = ok.nextClearBit(0); id < n; id = ok.nextClearBit(id + 1)) {
            if (id != alsoAllowed) {
                logits[id] = Float.NEGATIVE_INFINITY;
            }
        }
        for (int id : markers) {
            if (id < n && id != alsoAllowed) {
                logits[id] = Float.NEGATIVE_INFINITY;
            }
        }
        for (int id : ends) {
            if (id >= 0 && id < n) {
                logits[id] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** Everything but {@code token} is masked out. */
    private static void only(float[] logits, int n, int token) {
        for (int id = 0; id < n; id++) {
            if (id != token) {
                logits[id] = Float.NEGATIVE_INFINITY;
            }
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
                } else if (step(token) && cursor.complete()) {
                    phase = Phase.CALL_OPEN;
                }
            }
            case TYPE -> {
                if (step(token) && cursor.complete()) {
                    phase = Phase.SEP;
                }
            }
            case BODY -> {
                if (step(token) && cursor.complete()) {
                    phase = Phase.CALL_CLOSE;
                }
            }
            case DONE -> throw new IllegalStateException("token " + token + " after the tool calls were closed");
        }
    }

    private boolean step(int token) {
        boolean open = phase != Phase.NEXT || grammar.parallel;
        if (!open || vocab.isSpecial(token) || contains(markers, token) || !cursor.step(vocab.tokenBytes(token))) {
            throw new IllegalStateException("token " + token + " cannot continue the tool calls");
        }
        return true;
    }

    private static boolean contains(int[] ids, int id) {
        for (int i : ids) {
            if (i == id) {
                return true;
            }
        }
        return false;
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
