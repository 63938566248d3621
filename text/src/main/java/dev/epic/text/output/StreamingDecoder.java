package dev.epic.text.output;

import dev.epic.text.Vocabulary;
import java.nio.ByteBuffer;
import java.nio.CharBuffer;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CoderResult;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.function.IntPredicate;

/**
 * Turns a token stream into text incrementally. Byte-level BPE tokens may end inside a multi-byte UTF-8
 * character, so the bytes of an incomplete trailing sequence are held until the next token completes
 * them; invalid bytes become U+FFFD as soon as they are known to be invalid, and {@link #finish()} turns a
 * dangling incomplete sequence into U+FFFD.
 */
public final class StreamingDecoder {
    private final Vocabulary vocab;
    private final boolean skipSpecial;
    private final IntPredicate keepAnyway;
    private final CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
            .onMalformedInput(CodingErrorAction.REPLACE)
            .onUnmappableCharacter(CodingErrorAction.REPLACE);
    private ByteBuffer pending = ByteBuffer.allocate(64); // write mode between calls
    private CharBuffer out = CharBuffer.allocate(64);
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
        byte[] bytes = vocab.tokenBytes(id);
        if (pending.remaining() < bytes.length) {
            ByteBuffer bigger = ByteBuffer.allocate(Math.max(pending.capacity() * 2, pending.position() + bytes.length));
            pending.flip();
            bigger.put(pending);
            pending = bigger;
        }
        pending.put(bytes);
        return decode(false);
    }

    /** Ends the stream: an incomplete trailing sequence becomes U+FFFD. */
    public String finish() {
        if (finished) {
            return "";
        }
        finished = true;
        return decode(true);
    }

    /** True while bytes of an incomplete character are held back. */
    public boolean hasPending() {
        return pending.position() > 0;
    }

    private String decode(boolean endOfInput) {
        pending.flip();
        out.clear();
        if (out.capacity() < pending.remaining() + 4) {
            out = CharBuffer.allocate(pending.remaining() * 2 + 4);
        }
        CoderResult r = utf8.decode(pending, out, endOfInput);
        if (r.isOverflow()) {
            throw new IllegalStateException("UTF-8 decode overflow (output buffer sizing bug)");
        }
        if (endOfInput) {
            utf8.flush(out);
            utf8.reset();
        }
        pending.compact();
        out.flip();
        return out.toString();
    }
}
