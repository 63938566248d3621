package dev.epic.text.constrain;

/**
 * Strict UTF-8 (RFC 3629) one byte at a time: how many continuation bytes a lead byte needs, the
 * range the first of them must fall in (no overlong forms, surrogates or code points past U+10FFFF),
 * and which code points a partly read sequence can still become.
 */
final class Utf8 {
    private Utf8() {}

    /** The first continuation byte's range after a lead byte: any, E0, ED, F0, F4 (RFC 3629's table). */
    private static final int[] CONTINUATION_MIN = {0x80, 0xa0, 0x80, 0x90, 0x80};
    private static final int[] CONTINUATION_MAX = {0xbf, 0xbf, 0x9f, 0xbf, 0x8f};

    /** Continuation bytes lead byte b needs: 0 for ASCII, 1 to 3, or -1 if b cannot start a character. */
    static int more(int b) {
        return b < 0x80 ? 0 : b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    }

    /** The range (an index into the tables) of the continuation byte after lead byte b. */
    static int range(int b) {
        return b == 0xe0 ? 1 : b == 0xed ? 2 : b == 0xf0 ? 3 : b == 0xf4 ? 4 : 0;
    }

    /** Whether b is a continuation byte in the range; later continuation bytes use range 0. */
    static boolean continues(int range, int b) {
        return b >= CONTINUATION_MIN[range] && b <= CONTINUATION_MAX[range];
    }

    /** The code point bits lead byte b carries. */
    static int leadBits(int b, int more) {
        return b & 0x3f >> more;
    }

    /** The lowest code point a sequence can become with {@code bits} read, {@code owed} bytes to come, the next in {@code range}. */
    static int lowest(int bits, int owed, int range) {
        return bits << 6 * owed | (CONTINUATION_MIN[range] & 0x3f) << 6 * (owed - 1);
    }

    /** The highest such code point. */
    static int highest(int bits, int owed, int range) {
        int below = 6 * (owed - 1);
        return bits << 6 * owed | (CONTINUATION_MAX[range] & 0x3f) << below | (1 << below) - 1;
    }
}
