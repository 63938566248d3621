package dev.epic.text.tokenizer;

/**
 * UTF-8 to String with one U+FFFD per maximal subpart of an ill-formed sequence (Unicode 3.9, "best practice"),
 * exactly as Rust's {@code String::from_utf8_lossy} in the reference decoder. Java's own decoder differs: it turns
 * e.g. {@code ED A0} (a surrogate prefix) into one U+FFFD where the reference writes two.
 */
final class Utf8 {
    private Utf8() {}

    static String decodeLossy(byte[] b) {
        char[] out = new char[b.length];
        int n = 0;
        int i = 0;
        int len = b.length;
        while (i < len) {
            int b0 = b[i] & 0xFF;
            if (b0 < 0x80) {
                out[n++] = (char) b0;
                i++;
                continue;
            }
            int need;
            int lo = 0x80;
            int hi = 0xBF;
            if (b0 >= 0xC2 && b0 <= 0xDF) {
                need = 1;
            } else if (b0 >= 0xE0 && b0 <= 0xEF) {
                need = 2;
                if (b0 == 0xE0) {
                    lo = 0xA0; // no overlong forms
                } else if (b0 == 0xED) {
                    hi = 0x9F; // no surrogates
                }
            } else if (b0 >= 0xF0 && b0 <= 0xF4) {
                need = 3;
                if (b0 == 0xF0) {
                    lo = 0x90; // no overlong forms
                } else if (b0 == 0xF4) {
                    hi = 0x8F; // nothing above U+10FFFF
                }
            } else {
                out[n++] = '\uFFFD'; // C0, C1, F5..FF, or a stray continuation byte
                i++;
                continue;
            }
            int cp = b0 & (0x3F >> need);
            int j = i + 1;
            boolean complete = true;
            for (int k = 0; k < need; k++, j++) {
                int c = j < len ? b[j] & 0xFF : -1;
                if (c < (k == 0 ? lo : 0x80) || c > (k == 0 ? hi : 0xBF)) {
                    complete = false;
                    break;
                }
                cp = (cp << 6) | (c & 0x3F);
            }
            if (complete) {
                if (cp >= 0x10000) {
                    out[n++] = Character.highSurrogate(cp);
                    out[n++] = Character.lowSurrogate(cp);
                } else {
                    out[n++] = (char) cp;
                }
            } else {
                out[n++] = '\uFFFD'; // the maximal subpart b[i, j) is replaced as a whole
            }
            i = j;
        }
        return new String(out, 0, n);
    }
}
