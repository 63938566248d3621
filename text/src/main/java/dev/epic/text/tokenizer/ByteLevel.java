package dev.epic.text.tokenizer;

/**
 * GPT-2's reversible byte-to-character table: printable Latin-1 bytes map to themselves, the other 68 bytes to
 * U+0100.. in order (space becomes 'Ġ', newline 'Ċ'), so every byte string is a string of visible characters.
 */
final class ByteLevel {
    private static final char[] BYTE_TO_CHAR = new char[256];
    /** Inverse table indexed by char; -1 where the char is not a byte-level char. */
    private static final int[] CHAR_TO_BYTE = new int[512];

    static {
        java.util.Arrays.fill(CHAR_TO_BYTE, -1);
        int extra = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char) b : (char) (256 + extra++);
            BYTE_TO_CHAR[b] = c;
            CHAR_TO_BYTE[c] = b;
        }
    }

    private ByteLevel() {}

    static char charOf(int b) {
        return BYTE_TO_CHAR[b & 0xFF];
    }

    /** The byte behind a byte-level char, or -1 if {@code c} is not one. */
    static int byteOf(char c) {
        return c < CHAR_TO_BYTE.length ? CHAR_TO_BYTE[c] : -1;
    }

    /**
     * The bytes a token string stands for, as Hugging Face's ByteLevel decoder does it: if every char is a
     * byte-level char, the mapped bytes; otherwise (e.g. {@code <｜User｜>}) the token's own UTF-8.
     */
    static byte[] tokenBytes(String token) {
        byte[] out = new byte[token.length()];
        for (int i = 0; i < token.length(); i++) {
            int b = byteOf(token.charAt(i));
            if (b < 0) {
                return token.getBytes(java.nio.charset.StandardCharsets.UTF_8);
            }
            out[i] = (byte) b;
        }
        return out;
    }
}
