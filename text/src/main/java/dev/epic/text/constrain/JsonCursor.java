package dev.epic.text.constrain;

/**
 * A position in a JSON object being written byte by byte (RFC 8259, with the top-level value an
 * object, as OpenAI's JSON mode asks): {@link #step} takes one byte and says whether the text so far
 * can still become a valid object. The whole state is five small numbers, so copying a cursor is
 * cheap; the token mask walks the vocabulary with one cursor per prefix depth.
 *
 * <p>Strings must be valid UTF-8 (RFC 3629: no overlong forms, surrogates or code points past
 * U+10FFFF) with no raw control characters.
 * Runs of whitespace are capped at {@link #MAX_WHITESPACE} bytes so a sampler cannot stall in
 * whitespace forever; nesting is capped at {@link #MAX_DEPTH}.
 */
public final class JsonCursor implements ByteAutomaton<JsonCursor> {
    static final int MAX_DEPTH = 62;
    static final int MAX_WHITESPACE = 128;

    // Modes: what may come next.
    private static final int TOP = 0;          // before the top-level object: whitespace or '{'
    private static final int VALUE = 1;        // a value (after ':' or ',' in an array)
    private static final int ARRAY_FIRST = 2;  // after '[': a value or ']'
    private static final int OBJECT_FIRST = 3; // after '{': a key or '}'
    private static final int KEY = 4;          // after ',' in an object: a key
    private static final int COLON = 5;        // after a key
    private static final int AFTER = 6;        // after a value in a container: ',' or the closing bracket
    // inside a string; aux: bit 0 = key, bits 1-2 = UTF-8 continuation bytes owed, bits 6-8 = the range
    // the next continuation byte must be in (after E0, ED, F0, F4: no overlong forms, surrogates or
    // code points past U+10FFFF)
    private static final int STRING = 7;
    private static final int ESCAPE = 8;       // after a backslash in a string; aux as STRING
    private static final int HEX = 9;          // in \\uXXXX; aux as STRING, bits 3-5 = hex digits left
    private static final int LITERAL = 10;     // in true/false/null; aux = literal * 8 + bytes matched
    private static final int MINUS = 11;       // number: after '-'
    private static final int ZERO = 12;        // number: a leading 0 (may end)
    private static final int INT = 13;         // number: integer digits (may end)
    private static final int DOT = 14;         // number: after '.'
    private static final int FRACTION = 15;    // number: fraction digits (may end)
    private static final int EXP = 16;         // number: after e/E
    private static final int EXP_SIGN = 17;    // number: after the exponent's sign
    private static final int EXP_DIGITS = 18;  // number: exponent digits (may end)
    private static final int DONE = 19;        // the top-level object is closed: only whitespace

    private static final byte[][] LITERALS = {"true".getBytes(), "false".getBytes(), "null".getBytes()};
    /** The first continuation byte's range after a lead byte: any, E0, ED, F0, F4 (RFC 3629's table). */
    static final int[] CONTINUATION_MIN = {0x80, 0xa0, 0x80, 0x90, 0x80};
    static final int[] CONTINUATION_MAX = {0xbf, 0xbf, 0x9f, 0xbf, 0x8f};

    /** Continuation bytes a UTF-8 lead byte b needs (1-3), or -1 if b cannot start a character. */
    static int continuations(int b) {
        return b >= 0xc2 && b <= 0xdf ? 1 : b >= 0xe0 && b <= 0xef ? 2 : b >= 0xf0 && b <= 0xf4 ? 3 : -1;
    }

    /** The range (an index into CONTINUATION_MIN/MAX) of the byte after lead byte b. */
    static int firstContinuationRange(int b) {
        return b == 0xe0 ? 1 : b == 0xed ? 2 : b == 0xf0 ? 3 : b == 0xf4 ? 4 : 0;
    }

    /** Bit d set: the container at depth d (1-based) is an object, else an array. */
    private long stack;
    private int depth;
    private int mode = TOP;
    private int aux;
    private int whitespace;

    public JsonCursor() {}

    @Override
    public JsonCursor copy() {
        JsonCursor c = new JsonCursor();
        c.copyFrom(this);
        return c;
    }

    @Override
    public void copyFrom(JsonCursor o) {
        stack = o.stack;
        depth = o.depth;
        mode = o.mode;
        aux = o.aux;
        whitespace = o.whitespace;
    }

    /** Whether the text so far is a whole JSON object (the generation may end here). */
    @Override
    public boolean complete() {
        return mode == DONE;
    }

    /** The state as one value, for caching what follows from it (closed containers' bits left out). */
    @Override
    public StateKey key() {
        return new StateKey(stack & ((2L << depth) - 1),
                ((long) depth << 40) | ((long) mode << 32) | ((long) aux << 8) | whitespace);
    }

    record StateKey(long stack, long rest) {}

    /** Feeds one byte (0..255); false if the text can no longer become a JSON object. */
    @Override
    public boolean step(int b) {
        switch (mode) {
            case STRING -> {
                return string(b);
            }
            case ESCAPE -> {
                if (b == 'u') {
                    mode = HEX;
                    aux = (aux & 7) | (4 << 3);
                    return true;
                }
                if (b == '"' || b == '\\' || b == '/' || b == 'b' || b == 'f' || b == 'n' || b == 'r' || b == 't') {
                    mode = STRING;
                    return true;
                }
                return false;
            }
            case HEX -> {
                if (!isHex(b)) {
                    return false;
                }
                int left = (aux >> 3) - 1;
                aux = (aux & 7) | (left << 3);
                if (left == 0) {
                    mode = STRING;
                }
                return true;
            }
            case LITERAL -> {
                byte[] lit = LITERALS[aux >> 3];
                int i = aux & 7;
                if (b != lit[i]) {
                    return false;
                }
                if (i + 1 == lit.length) {
                    valueDone();
                } else {
                    aux++;
                }
                return true;
            }
            case MINUS -> {
                return digitStart(b);
            }
            case ZERO, INT, FRACTION, EXP_DIGITS -> {
                if (b >= '0' && b <= '9' && mode != ZERO) {
                    return true;
                }
                if ((b == '.') && (mode == ZERO || mode == INT)) {
                    mode = DOT;
                    return true;
                }
                if ((b == 'e' || b == 'E') && mode != EXP_DIGITS) {
                    mode = EXP;
                    return true;
                }
                valueDone(); // the number ended before this byte, which must follow a value
                return step(b);
            }
            case DOT -> {
                if (b >= '0' && b <= '9') {
                    mode = FRACTION;
                    return true;
                }
                return false;
            }
            case EXP -> {
                if (b == '+' || b == '-') {
                    mode = EXP_SIGN;
                    return true;
                }
                if (b >= '0' && b <= '9') {
                    mode = EXP_DIGITS;
                    return true;
                }
                return false;
            }
            case EXP_SIGN -> {
                if (b >= '0' && b <= '9') {
                    mode = EXP_DIGITS;
                    return true;
                }
                return false;
            }
            default -> {
                return structural(b);
            }
        }
    }

    /** Modes between tokens of JSON: whitespace, brackets, commas, colons, value starts. */
    private boolean structural(int b) {
        if (b == ' ' || b == '\n' || b == '\r' || b == '\t') {
            return ++whitespace <= MAX_WHITESPACE;
        }
        whitespace = 0;
        switch (mode) {
            case TOP -> {
                return b == '{' && open(true);
            }
            case VALUE, ARRAY_FIRST -> {
                if (mode == ARRAY_FIRST && b == ']') {
                    return close(false);
                }
                return value(b);
            }
            case OBJECT_FIRST, KEY -> {
                if (mode == OBJECT_FIRST && b == '}') {
                    return close(true);
                }
                if (b == '"') {
                    mode = STRING;
                    aux = 1; // a key
                    return true;
                }
                return false;
            }
            case COLON -> {
                if (b == ':') {
                    mode = VALUE;
                    return true;
                }
                return false;
            }
            case AFTER -> {
                boolean object = inObject();
                if (b == ',') {
                    mode = object ? KEY : VALUE;
                    return true;
                }
                return b == (object ? '}' : ']') && close(object);
            }
            default -> {
                return false; // DONE: nothing but whitespace
            }
        }
    }

    private boolean value(int b) {
        switch (b) {
            case '{' -> {
                return open(true);
            }
            case '[' -> {
                return open(false);
            }
            case '"' -> {
                mode = STRING;
                aux = 0;
                return true;
            }
            case 't', 'f', 'n' -> {
                mode = LITERAL;
                aux = (b == 't' ? 0 : b == 'f' ? 1 : 2) * 8 + 1;
                return true;
            }
            case '-' -> {
                mode = MINUS;
                return true;
            }
            default -> {
                return digitStart(b);
            }
        }
    }

    private boolean digitStart(int b) {
        if (b == '0') {
            mode = ZERO;
            return true;
        }
        if (b >= '1' && b <= '9') {
            mode = INT;
            return true;
        }
        return false;
    }

    private boolean string(int b) {
        int owed = (aux >> 1) & 3;
        if (owed > 0) { // inside a multi-byte UTF-8 character
            int range = (aux >> 6) & 7;
            if (b < CONTINUATION_MIN[range] || b > CONTINUATION_MAX[range]) {
                return false;
            }
            aux = (aux & 1) | ((owed - 1) << 1); // later continuation bytes: the whole 80-BF range
            return true;
        }
        if (b == '"') {
            if ((aux & 1) != 0) {
                mode = COLON;
            } else {
                valueDone();
            }
            return true;
        }
        if (b == '\\') {
            mode = ESCAPE;
            return true;
        }
        if (b < 0x20) {
            return false; // control characters must be escaped
        }
        if (b < 0x80) {
            return true;
        }
        int more = continuations(b);
        if (more < 0) {
            return false; // a continuation byte without a lead, or a byte UTF-8 never uses
        }
        int range = firstContinuationRange(b);
        aux = (aux & 1) | (more << 1) | (range << 6);
        return true;
    }

    private boolean open(boolean object) {
        if (depth == MAX_DEPTH) {
            return false;
        }
        depth++;
        stack = object ? stack | (1L << depth) : stack & ~(1L << depth);
        mode = object ? OBJECT_FIRST : ARRAY_FIRST;
        return true;
    }

    private boolean close(boolean object) {
        if (depth == 0 || inObject() != object) {
            return false;
        }
        depth--;
        valueDone();
        return true;
    }

    private boolean inObject() {
        return depth > 0 && (stack & (1L << depth)) != 0;
    }

    /** A value just ended: what follows depends on the container it is in (none: the object is done). */
    private void valueDone() {
        mode = depth == 0 ? DONE : AFTER;
        aux = 0;
        whitespace = 0;
    }

    private static boolean isHex(int b) {
        return b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F';
    }
}
