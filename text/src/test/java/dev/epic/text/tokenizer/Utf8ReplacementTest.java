package dev.epic.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.charset.StandardCharsets;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Utf8#decodeLossy} must replace each maximal subpart of an ill-formed sequence with one U+FFFD (Unicode's
 * best practice, used by Rust's from_utf8_lossy). Checked against examples from the Unicode Standard and Rust's
 * documentation, and against that definition written out independently from Table 3-7 of the standard.
 */
class Utf8ReplacementTest {
    /** Reference: well-formed sequences decode, each maximal subpart of an ill-formed one becomes U+FFFD. */
    static String lossy(byte[] b) {
        StringBuilder out = new StringBuilder();
        int i = 0;
        while (i < b.length) {
            int b0 = b[i] & 0xFF;
            int need;
            int lo = 0x80;
            int hi = 0xBF;
            if (b0 < 0x80) {
                out.append((char) b0);
                i++;
                continue;
            } else if (b0 >= 0xC2 && b0 <= 0xDF) {
                need = 1;
            } else if (b0 >= 0xE0 && b0 <= 0xEF) {
                need = 2;
                if (b0 == 0xE0) {
                    lo = 0xA0;
                } else if (b0 == 0xED) {
                    hi = 0x9F;
                }
            } else if (b0 >= 0xF0 && b0 <= 0xF4) {
                need = 3;
                if (b0 == 0xF0) {
                    lo = 0x90;
                } else if (b0 == 0xF4) {
                    hi = 0x8F;
                }
            } else {
                out.append('\uFFFD');
                i++;
                continue;
            }
            int cp = b0 & (0x3F >> need);
            int j = i + 1;
            boolean ok = true;
            for (int k = 0; k < need; k++, j++) {
                int lower = k == 0 ? lo : 0x80;
                int upper = k == 0 ? hi : 0xBF;
                if (j >= b.length || (b[j] & 0xFF) < lower || (b[j] & 0xFF) > upper) {
                    ok = false;
                    break;
                }
                cp = (cp << 6) | (b[j] & 0x3F);
            }
            if (ok) {
                out.appendCodePoint(cp);
            } else {
                out.append('\uFFFD');
            }
            i = j;
        }
        return out.toString();
    }

    @Test
    void publishedExamples() {
        // Unicode Standard 3.9, Table 3-8.
        assertEquals("a\uFFFD\uFFFD\uFFFDb\uFFFDc\uFFFD\uFFFDd", Utf8.decodeLossy(java.util.HexFormat.of()
                .parseHex("61f18080e180c2628063" + "80bf64")));
        // Rust's from_utf8_lossy documentation.
        byte[] rust = {'H', 'e', 'l', 'l', 'o', ' ', (byte) 0xF0, (byte) 0x90, (byte) 0x80, 'W', 'o', 'r', 'l', 'd'};
        assertEquals("Hello \uFFFDWorld", Utf8.decodeLossy(rust));
        // A surrogate prefix: ED cannot start ED A0, so each byte is its own subpart (Java's decoder gives one).
        assertEquals("\uFFFD\uFFFD", Utf8.decodeLossy(new byte[] {(byte) 0xED, (byte) 0xA0}));
        assertEquals("\uFFFD\uFFFD\uFFFD", Utf8.decodeLossy(new byte[] {(byte) 0xED, (byte) 0xA0, (byte) 0x80}));
    }

    @Test
    void matchesTheDefinitionOnAllShortAndManyRandomSequences() {
        // Every 1- and 2-byte sequence, then all 3-byte sequences over an interesting byte set, then random bytes.
        int[] interesting = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1,
            0xEC, 0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFE, 0xFF};
        for (int a = 0; a < 256; a++) {
            check(new byte[] {(byte) a});
            for (int b = 0; b < 256; b++) {
                check(new byte[] {(byte) a, (byte) b});
            }
        }
        for (int a : interesting) {
            for (int b : interesting) {
                for (int c : interesting) {
                    for (int d : interesting) {
                        check(new byte[] {(byte) a, (byte) b, (byte) c, (byte) d});
                    }
                }
            }
        }
        Random rnd = new Random(7);
        for (int n = 0; n < 20000; n++) {
            byte[] b = new byte[rnd.nextInt(12)];
            for (int i = 0; i < b.length; i++) {
                b[i] = (byte) interesting[rnd.nextInt(interesting.length)];
            }
            check(b);
        }
    }

    private static void check(byte[] b) {
        assertEquals(lossy(b), Utf8.decodeLossy(b), () -> java.util.HexFormat.of().formatHex(b));
    }
}
