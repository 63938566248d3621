package dev.epic.text.output;

import dev.epic.text.Vocabulary;
import java.util.function.IntPredicate;

/**
 * Turns a token stream into text incrementally. Byte-level BPE tokens may end inside a multi-byte UTF-8
 * character, so the bytes of an incomplete trailing sequence are held until the next token completes them;
 * invalid bytes become U+FFFD as soon as they are known to be invalid, and {@link #finish()} turns a dangling
 * incomplete sequence into U+FFFD. The concatenated output equals a one-shot lossy decode of all the bytes.
 */
public final class StreamingDecoder {
    private final Vocabulary vocab;
    private final boolean skipSpecial;
    private final IntPredicate keepAnyway;
    private final Utf8Stream utf8 = new Utf8Stream();
    private final StringBuilder out = new StringBuilder();
    private boolean finished;

    /** Decodes every token, special ones included. */
    public StreamingDecoder(Vocabulary vocab) {
        this(vocab, false, id -> false);
    }

    /**
     * @param skipSpecial leave out tokens the vocabulary flags as special
     * @param keepAnyway  special token ids to decode even when skipping (e.g. markers the parsers need)
     */
    public StreamingDecoder(Vocabulary vocab, boolean skipSpecial, IntPredicate keepAnyway) {
        this.vocab = vocab;
        this.skipSpecial = skipSpecial;
        this.keepAnyway = keepAnyway;
    }

    /** Adds one token; returns the text that is now complete (possibly empty). */
    public String push(int id) {
        if (finished) {
            throw new IllegalStateException("decoder already finished");
        }
        if (id < 0 || id >= vocab.size()) {
            throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, " + vocab.size() + ")");
        }
        if (skipSpecial && vocab.isSpecial(id) && !keepAnyway.test(id)) {
            return "";
        }
        out.setLength(0);
        utf8.decode(vocab.tokenBytes(id), out);
        return out.toString();
    }

    /** Ends the stream: an incomplete trailing sequence becomes U+FFFD. */
    public String finish() {
        if (finished) {
            return "";
        }
        finished = true;
        out.setLength(0);
        utf8.finish(out);
        return out.toString();
    }

    /** True while bytes of an incomplete character are held back. */
    public boolean hasPending() {
        return utf8.pending();
    }
}
