package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import dev.epic.text.output.DeepSeekMarkers;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.Collections;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * A constrained answer after a thinking block, as vLLM's reasoning parsers do it: the output opens
 * {@code <think>} (unless the prompt already has), thinks freely, and once {@code </think>} closes the
 * block the answer's constraint (JSON, forced tool calls) applies. The markers are matched in bytes,
 * so they may come as added tokens (R1's vocabulary) or be spelled over plain ones (V3's). A token that
 * would close the block with more text after the marker is masked out, so that the answer's first
 * token is one its constraint chose. The generation cannot end before the answer is whole.
 */
public final class ThinkingFirst implements TokenConstraint {
    private static final byte[] OPEN = DeepSeekMarkers.THINK_OPEN.getBytes(StandardCharsets.UTF_8);
    private static final byte[] CLOSE = DeepSeekMarkers.THINK_CLOSE.getBytes(StandardCharsets.UTF_8);
    /** For the close marker's matcher: the longest proper prefix that is also a suffix, per prefix length. */
    private static final int[] FAIL = failures(CLOSE);
    private static final Map<Vocabulary, Tables> TABLES = Collections.synchronizedMap(new WeakHashMap<>());

    private final Vocabulary vocab;
    private final TokenConstraint answer;
    private final Tables tables;
    /** Bytes of {@code <think>} written; OPEN.length once open. */
    private int opened;
    /** Bytes of {@code </think>} matched at the end of the thought so far. */
    private int closing;
    private boolean answering;

    /** @param promptOpened the prompt ends inside an opened thinking block (R1's January template) */
    public ThinkingFirst(Vocabulary vocab, TokenConstraint answer, boolean promptOpened) {
        this.vocab = vocab;
        this.answer = answer;
        this.tables = TABLES.computeIfAbsent(vocab, v -> new Tables());
        this.opened = promptOpened ? OPEN.length : 0;
    }

    @Override
    public void mask(float[] logits, int n) {
        if (answering) {
            answer.mask(logits, n);
            return;
        }
        BitSet allowed = opened < OPEN.length ? tables.opening(vocab, opened) : tables.thinking(vocab, closing);
        for (int id = allowed.nextClearBit(0); id < n; id = allowed.nextClearBit(id + 1)) {
            logits[id] = Float.NEGATIVE_INFINITY;
        }
    }

    @Override
    public void accept(int token) {
        if (answering) {
            answer.accept(token);
            return;
        }
        byte[] b = vocab.tokenBytes(token);
        int i = 0;
        for (; i < b.length && opened < OPEN.length; i++) {
            if (b[i] != OPEN[opened++]) {
                throw new IllegalStateException("token " + token + " does not open the thinking block");
            }
        }
        for (; i < b.length; i++) {
            closing = step(closing, b[i]);
            if (closing == CLOSE.length) {
                if (i != b.length - 1) {
                    throw new IllegalStateException("token " + token + " writes past the end of the thinking block");
                }
                answering = true;
            }
        }
    }

    @Override
    public boolean complete() {
        return answering && answer.complete();
    }

    /** Whether the thinking block is closed and the answer's constraint applies. */
    public boolean answering() {
        return answering;
    }

    private static int step(int matched, byte b) {
        while (matched > 0 && CLOSE[matched] != b) {
            matched = FAIL[matched];
        }
        return CLOSE[matched] == b ? matched + 1 : 0;
    }

    private static int[] failures(byte[] p) {
        int[] f = new int[p.length + 1];
        for (int i = 1, k = 0; i < p.length; i++) {
            while (k > 0 && p[i] != p[k]) {
                k = f[k];
            }
            if (p[i] == p[k]) {
                k++;
            }
            f[i + 1] = k;
        }
        return f;
    }

    /**
     * Per vocabulary, the tokens allowed at each point of the opening marker and of a partly matched
     * close marker: few states, so each is computed once, on first use. Special tokens are left out:
     * the decoded text may skip them, and the reasoning parser, which reads that text, must see the
     * same marker this matcher does. (No reference to the vocabulary: it is the tables' weak key.)
     */
    private static final class Tables {
        private final BitSet[] opening = new BitSet[OPEN.length];
        private final BitSet[] thinking = new BitSet[CLOSE.length];

        /** After {@code k} bytes of {@code <think>}: tokens that go on writing it, and then think without closing past their end. */
        synchronized BitSet opening(Vocabulary vocab, int k) {
            if (opening[k] == null) {
                BitSet ok = new BitSet(vocab.size());
                for (int id = 0; id < vocab.size(); id++) {
                    byte[] b = vocab.tokenBytes(id);
                    int common = Math.min(b.length, OPEN.length - k);
                    if (b.length > 0 && written(vocab, id) && java.util.Arrays.equals(b, 0, common, OPEN, k, k + common)
                            && thinksWithin(b, common, 0)) {
                        ok.set(id);
                    }
                }
                opening[k] = ok;
            }
            return opening[k];
        }

        /** With {@code matched} bytes of {@code </think>} pending: tokens that do not close the block before their end. */
        synchronized BitSet thinking(Vocabulary vocab, int matched) {
            if (thinking[matched] == null) {
                BitSet ok = new BitSet(vocab.size());
                for (int id = 0; id < vocab.size(); id++) {
                    byte[] b = vocab.tokenBytes(id);
                    if (b.length > 0 && written(vocab, id) && thinksWithin(b, 0, matched)) {
                        ok.set(id);
                    }
                }
                thinking[matched] = ok;
            }
            return thinking[matched];
        }

        /** Whether the token is text the decoder writes: not special, unless it is a thinking marker itself. */
        private static boolean written(Vocabulary vocab, int id) {
            byte[] b = vocab.tokenBytes(id);
            return !vocab.isSpecial(id) || java.util.Arrays.equals(b, OPEN) || java.util.Arrays.equals(b, CLOSE);
        }

        /** Whether bytes b[from..] of thought, after {@code matched} bytes of the close marker, close the block nowhere but at their end. */
        private static boolean thinksWithin(byte[] b, int from, int matched) {
            for (int i = from; i < b.length; i++) {
                matched = step(matched, b[i]);
                if (matched == CLOSE.length && i != b.length - 1) {
                    return false;
                }
            }
            return true;
        }
    }
}
