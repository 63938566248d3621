package dev.epic.text.output;

/**
 * Incremental lossy UTF-8 decoder with the "maximal subpart" replacement rule (Unicode ch. 3, WHATWG, Rust's
 * {@code from_utf8_lossy}, Hugging Face tokenizers): each maximal prefix of a valid sequence that cannot be
 * completed becomes one U+FFFD. Feeding the bytes in any chunks gives the same text as decoding them at once,
 * which java.nio's decoder does not guarantee (it replaces an encoded surrogate {@code ED A0 80} with one
 * U+FFFD instead of three).
 */
final class Utf8Stream {
    private static final char REPLACEMENT = '\uFFFD';

    private int need;       // continuation bytes still expected
    private int codePoint;  // bits collected so far
    private int lower = 0x80;
    private int upper = 0xBF;

    /** Decodes {@code bytes} into {@code out}; an incomplete trailing sequence stays pending. */
    void decode(byte[] bytes, StringBuilder out) {
        for (byte value : bytes) {
            int b = value & 0xFF;
            if (need > 0) {
                if (b >= lower && b <= upper) {
                    codePoint = codePoint << 6 | b & 0x3F;
                    lower = 0x80;
                    upper = 0xBF;
                    if (--need == 0) {
                        out.appendCodePoint(codePoint);
                    }
                    continue;
                }
                out.append(REPLACEMENT); // the sequence so far is a maximal subpart; b starts afresh
                need = 0;
                lower = 0x80;
                upper = 0xBF;
            }
            lead(b, out);
        }
    }

    private void lead(int b, StringBuilder out) {
        if (b < 0x80) {
            out.append((char) b);
        } else if (b >= 0xC2 && b <= 0xDF) {
            start(1, b & 0x1F, 0x80, 0xBF);
        } else if (b == 0xE0) {
            start(2, b & 0x0F, 0xA0, 0xBF);      // no overlong forms
        } else if (b == 0xED) {
            start(2, b & 0x0F, 0x80, 0x9F);      // no surrogates
        } else if (b >= 0xE1 && b <= 0xEF) {
            start(2, b & 0x0F, 0x80, 0xBF);
        } else if (b == 0xF0) {
            start(3, b & 0x07, 0x90, 0xBF);      // no overlong forms
        } else if (b >= 0xF1 && b <= 0xF3) {
            start(3, b & 0x07, 0x80, 0xBF);
        } else if (b == 0xF4) {
            start(3, b & 0x07, 0x80, 0x8F);      // <= U+10FFFF
        } else {
            out.append(REPLACEMENT);             // continuation byte without lead, C0, C1, F5..FF
        }
    }

    private void start(int n, int bits, int lo, int hi) {
        need = n;
        codePoint = bits;
        lower = lo;
        upper = hi;
    }

    /** True while an incomplete sequence is held. */
    boolean pending() {
        return need > 0;
    }

    /** End of input: a held incomplete sequence becomes one U+FFFD. */
    void finish(StringBuilder out) {
        if (need > 0) {
            out.append(REPLACEMENT);
            need = 0;
            lower = 0x80;
            upper = 0xBF;
        }
    }
}
