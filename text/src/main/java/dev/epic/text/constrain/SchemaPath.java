package dev.epic.text.constrain;

import java.util.Arrays;

/**
 * One deterministic reading of a JSON value being written byte by byte against a {@link JsonSchema}
 * (a {@link SchemaCursor} holds one per way an {@code anyOf} can still go): a stack of
 * frames, one per open value (object, array, string, number, literal, property name). A step feeds
 * one byte to the top frame; a number or literal ends when a byte cannot continue it, and that byte
 * then goes to the frame below. Strings are strict UTF-8 (RFC 3629) with no raw control
 * characters; objects write their properties in the schema's order, skipping optional ones. JSON
 * mode is the schema {@link JsonSchema#ANY_OBJECT}.
 */
final class SchemaPath implements ByteAutomaton<SchemaPath> {
    static final int MAX_FRAMES = 64;
    /**
     * Whitespace runs are capped at what indentation needs, 4 + 4 bytes per open value: enough for
     * pretty-printed output, and a weak model cannot drift into pages of blanks.
     */
    static int maxWhitespace(int depth) {
        return 4 + 4 * depth;
    }
    // A frame is F ints: kind, node, phase, pos, count, mask low, mask high, and for strings and numbers
    // under a StringRule or NumberBounds: a partial character or fraction, the rule's state, a length or flags.
    private static final int F = 10, KIND = 0, NODE = 1, PHASE = 2, POS = 3, COUNT = 4, LO = 5, HI = 6, ACC = 7,
            AUT = 8, LEN = 9;
    private static final int VALUE = 0, OBJECT = 1, ARRAY = 2, STRING = 3, NUMBER = 4, LITERAL = 5, KEY = 6;
    // Object phases.
    private static final int O_FIRST = 0, O_KEYSTART = 1, O_IN_KEY = 2, O_COLON = 3, O_IN_VALUE = 4, O_AFTER = 5;
    // Array phases.
    private static final int A_FIRST = 0, A_IN_ITEM = 1, A_AFTER = 2;
    // String modes (POS), with COUNT = \\u digits left, LO = UTF-8 bytes owed, HI = the next one's range;
    // under a rule also ACC = the character so far, AUT = the rule's state, LEN = characters written.
    private static final int S_NORMAL = 0, S_ESCAPE = 1, S_HEX = 2;
    // Number states (POS); PHASE = 1 for integers only. Under bounds: LO/HI = the integer part, COUNT and
    // ACC = fraction digits and their value, LEN = 1 negative | 2 settled (within bounds whatever follows).
    private static final int N_START = 0, N_MINUS = 1, N_ZERO = 2, N_INT = 3, N_DOT = 4, N_FRACTION = 5, N_EXP = 6,
            N_EXP_SIGN = 7, N_EXP_DIGITS = 8;
    private static final byte[][] BUILTIN = {"true".getBytes(), "false".getBytes(), "null".getBytes()};
    private static final int OK = 0, FAIL = 1, AGAIN = 2;

    private final JsonSchema schema;
    private final int[] st = new int[MAX_FRAMES * F];
    /**
     * Set when a step failed because a value could start as several anyOf alternatives: the leaves to
     * fork on. The step changed nothing then, so a copy forced to each leaf can take the byte again.
     */
    private int[] forks;
    /** The alternative the next ambiguous value takes (-1: none chosen). */
    private int forced = -1;
    private int depth;
    private int whitespace;

    SchemaPath(JsonSchema schema) {
        this.schema = schema;
        push(VALUE, schema.root);
    }

    @Override
    public SchemaPath copy() {
        SchemaPath c = new SchemaPath(schema);
        c.copyFrom(this);
        return c;
    }

    @Override
    public void copyFrom(SchemaPath o) {
        System.arraycopy(o.st, 0, st, 0, o.depth * F);
        depth = o.depth;
        whitespace = o.whitespace;
        forks = null;
        forced = -1;
    }

    @Override
    public Object key() {
        return key(Integer.MAX_VALUE);
    }

    @Override
    public Object key(int horizon) {
        int[] frames = Arrays.copyOf(st, depth * F);
        for (int t = 0; t < frames.length; t += F) {
            if (frames[t + KIND] == ARRAY) { // an array's item count matters only up to its bounds
                JsonSchema.Node node = schema.node(frames[t + NODE]);
                int cap = node.maxItems != Integer.MAX_VALUE ? node.maxItems
                        : Math.max(node.minItems, node.prefix == null ? 0 : node.prefix.length);
                frames[t + COUNT] = Math.min(frames[t + COUNT], cap);
            } else if (frames[t + KIND] == STRING && frames[t + PHASE] == 0) { // a length matters near its bounds
                StringRule rule = schema.node(frames[t + NODE]).string;
                if (rule != null) {
                    frames[t + LEN] = rule.lengthKey(frames[t + LEN], horizon);
                }
            }
        }
        return new Key(frames, whitespace);
    }

    private record Key(int[] frames, int whitespace) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && k.whitespace == whitespace && Arrays.equals(k.frames, frames);
        }

        @Override
        public int hashCode() {
            return 31 * Arrays.hashCode(frames) + whitespace;
        }
    }

    @Override
    public boolean complete() {
        if (depth == 0) {
            return true;
        }
        int t = 0; // a number or literal at the top level may end at the end of the text
        return depth == 1 && (st[t + KIND] == NUMBER && numberMayEnd(t)
                || st[t + KIND] == LITERAL && literalMayEnd(t));
    }

    @Override
    public boolean step(int b) {
        forks = null;
        try {
            while (true) {
                if (depth == 0) {
                    return isSpace(b) && ++whitespace <= maxWhitespace(0);
                }
                int r = stepTop(b);
                if (r != AGAIN) {
                    return r == OK;
                }
            }
        } finally {
            forced = -1; // a forced choice holds for the one step it was made for
        }
    }

    private int stepTop(int b) {
        int t = (depth - 1) * F;
        return switch (st[t + KIND]) {
            case VALUE -> value(t, b);
            case OBJECT -> object(t, b);
            case ARRAY -> array(t, b);
            case STRING -> string(t, b);
            case NUMBER -> number(t, b);
            case LITERAL -> literal(t, b);
            default -> key(t, b);
        };
    }

    private int space() {
        return ++whitespace <= maxWhitespace(depth) ? OK : FAIL;
    }

    private int value(int t, int b) {
        if (isSpace(b)) {
            return space();
        }
        int n = choose(st[t + NODE], b);
        if (n < 0) {
            return FAIL;
        }
        whitespace = 0;
        JsonSchema.Node node = schema.node(n);
        if (node.literals != null) {
            long mask = 0;
            for (int i = 0; i < node.literals.length; i++) {
                if ((node.literals[i][0] & 0xff) == b) {
                    mask |= 1L << i;
                }
            }
            return mask == 0 ? FAIL : replace(t, LITERAL, n, 0, 1, 0, mask);
        }
        int types = node.types;
        // A container opens only if it can be finished: near the frame limit, only one that may stay empty.
        boolean room = depth < MAX_FRAMES - 1;
        if (b == '{' && schema.objectSatisfiable(n) && (room || mayClose(node, 0))) {
            return replace(t, OBJECT, n, O_FIRST, 0, 0, 0);
        }
        if (b == '[' && schema.arraySatisfiable(n) && (room || node.minItems == 0)) {
            return replace(t, ARRAY, n, A_FIRST, 0, 0, 0);
        }
        if (b == '"' && (types & JsonSchema.STRING) != 0) {
            replace(t, STRING, n, 0, S_NORMAL, 0, 0);
            if (node.string != null) {
                st[t + AUT] = node.string.start();
            }
            return OK;
        }
        if ((b == '-' || b >= '0' && b <= '9') && (types & (JsonSchema.NUMBER | JsonSchema.INTEGER)) != 0) {
            replace(t, NUMBER, n, (types & JsonSchema.NUMBER) == 0 ? 1 : 0, N_START, 0, 0);
            return AGAIN;
        }
        long mask = 0;
        if ((types & JsonSchema.BOOLEAN) != 0) {
            mask |= b == 't' ? 1 : b == 'f' ? 2 : 0;
        }
        if ((types & JsonSchema.NULL) != 0 && b == 'n') {
            mask |= 4;
        }
        return mask == 0 ? FAIL : replace(t, LITERAL, -1, 0, 1, 0, mask);
    }

    private int object(int t, int b) {
        JsonSchema.Node node = schema.node(st[t + NODE]);
        int phase = st[t + PHASE];
        if (isSpace(b)) {
            return phase == O_IN_KEY || phase == O_IN_VALUE ? FAIL : space();
        }
        whitespace = 0;
        int next = st[t + POS];
        switch (phase) {
            case O_FIRST, O_KEYSTART -> {
                if (b == '}' && phase == O_FIRST) {
                    return mayClose(node, next) ? popValue() : FAIL;
                }
                if (b != '"') {
                    return FAIL;
                }
                st[t + PHASE] = O_IN_KEY;
                if (node.names == null) { // any object: any key, each value of the node's one value schema
                    if (!schema.satisfiable(node.additional)) {
                        return FAIL;
                    }
                    st[t + COUNT] = node.additional;
                    return push(STRING, st[t + NODE], 1, S_NORMAL, 0, 0) ? OK : FAIL;
                }
                long mask = keyCandidates(node, next);
                return mask != 0 && push(KEY, st[t + NODE], 0, 0, 0, mask) ? OK : FAIL;
            }
            case O_COLON -> {
                if (b != ':') {
                    return FAIL;
                }
                st[t + PHASE] = O_IN_VALUE;
                return push(VALUE, st[t + COUNT]) ? OK : FAIL;
            }
            case O_AFTER -> {
                if (b == ',') {
                    boolean more = node.names == null ? schema.satisfiable(node.additional) : keyCandidates(node, next) != 0;
                    if (!more) {
                        return FAIL;
                    }
                    st[t + PHASE] = O_KEYSTART;
                    return OK;
                }
                return b == '}' && mayClose(node, next) ? popValue() : FAIL;
            }
            default -> {
                return FAIL;
            }
        }
    }

    /** The properties that may come next: from {@code next} up to and including the first required one. */
    private long keyCandidates(JsonSchema.Node node, int next) {
        long mask = 0;
        for (int i = next; i < node.names.length; i++) {
            if (schema.satisfiable(node.values[i])) { // an optional property no value can finish is left out
                mask |= 1L << i;
            }
            if (node.required[i]) {
                break;
            }
        }
        return mask;
    }

    private static boolean mayClose(JsonSchema.Node node, int next) {
        if (node.names == null) {
            return true;
        }
        for (int i = next; i < node.names.length; i++) {
            if (node.required[i]) {
                return false;
            }
        }
        return true;
    }

    private int key(int t, int b) {
        JsonSchema.Node node = schema.node(st[t + NODE]);
        long mask = mask(t);
        int pos = st[t + POS];
        if (b == '"') {
            for (int i = 0; i < node.names.length; i++) {
                if ((mask >>> i & 1) != 0 && node.names[i].length == pos) {
                    depth--;
                    int p = (depth - 1) * F; // the object
                    st[p + PHASE] = O_COLON;
                    st[p + POS] = i + 1;
                    st[p + COUNT] = node.values[i];
                    return OK;
                }
            }
            return FAIL;
        }
        long next = 0;
        for (int i = 0; i < node.names.length; i++) {
            if ((mask >>> i & 1) != 0 && node.names[i].length > pos && (node.names[i][pos] & 0xff) == b) {
                next |= 1L << i;
            }
        }
        if (next == 0) {
            return FAIL;
        }
        setMask(t, next);
        st[t + POS] = pos + 1;
        return OK;
    }

    private int array(int t, int b) {
        JsonSchema.Node node = schema.node(st[t + NODE]);
        int phase = st[t + PHASE];
        if (isSpace(b)) {
            return phase == A_IN_ITEM ? FAIL : space();
        }
        switch (phase) {
            case A_FIRST -> {
                if (b == ']') {
                    whitespace = 0;
                    return node.minItems == 0 ? popValue() : FAIL;
                }
                int item = JsonSchema.item(node, 0);
                if (node.maxItems == 0 || !schema.satisfiable(item)) {
                    return FAIL;
                }
                if (forced < 0 && schema.picks(item, b).length > 1) {
                    forks = schema.picks(item, b); // decided before anything changes: see forks
                    return FAIL;
                }
                st[t + PHASE] = A_IN_ITEM;
                return push(VALUE, item) ? AGAIN : FAIL;
            }
            case A_AFTER -> {
                whitespace = 0;
                if (b == ',') {
                    int next = JsonSchema.item(node, st[t + COUNT]);
                    if (st[t + COUNT] >= node.maxItems || !schema.satisfiable(next)) {
                        return FAIL;
                    }
                    st[t + PHASE] = A_IN_ITEM;
                    return push(VALUE, next) ? OK : FAIL;
                }
                return b == ']' && st[t + COUNT] >= node.minItems ? popValue() : FAIL;
            }
            default -> {
                return FAIL;
            }
        }
    }

    private int string(int t, int b) {
        StringRule rule = st[t + PHASE] == 0 ? schema.node(st[t + NODE]).string : null;
        if (rule != null) {
            return ruledString(t, b, rule);
        }
        switch (st[t + POS]) {
            case S_ESCAPE -> {
                if (b == 'u') {
                    st[t + POS] = S_HEX;
                    st[t + COUNT] = 4;
                    return OK;
                }
                if (b == '"' || b == '\\' || b == '/' || b == 'b' || b == 'f' || b == 'n' || b == 'r' || b == 't') {
                    st[t + POS] = S_NORMAL;
                    return OK;
                }
                return FAIL;
            }
            case S_HEX -> {
                if (!(b >= '0' && b <= '9' || b >= 'a' && b <= 'f' || b >= 'A' && b <= 'F')) {
                    return FAIL;
                }
                if (--st[t + COUNT] == 0) {
                    st[t + POS] = S_NORMAL;
                }
                return OK;
            }
            default -> {
                int owed = st[t + LO];
                if (owed > 0) {
                    int range = st[t + HI];
                    if (!Utf8.continues(range, b)) {
                        return FAIL;
                    }
                    st[t + LO] = owed - 1;
                    st[t + HI] = 0;
                    return OK;
                }
                if (b == '"') {
                    if (st[t + PHASE] == 1) { // a property name of an any-object: its value comes next
                        depth--;
                        st[(depth - 1) * F + PHASE] = O_COLON;
                        return OK;
                    }
                    return popValue();
                }
                if (b == '\\') {
                    st[t + POS] = S_ESCAPE;
                    return OK;
                }
                if (b < 0x20) {
                    return FAIL;
                }
                if (b < 0x80) {
                    return OK;
                }
                // Continuation bytes the lead byte needs, and the range of the first.
                int more = Utf8.more(b);
                if (more < 0) {
                    return FAIL;
                }
                st[t + LO] = more;
                st[t + HI] = Utf8.range(b);
                return OK;
            }
        }
    }

    /**
     * A string under a {@link StringRule}: every character, written raw or escaped, steps the rule, and a
     * byte is refused as soon as no character it can begin keeps the string completable. Surrogate
     * escapes are refused here (characters past U+FFFF are written raw), so each escape is one character.
     */
    private int ruledString(int t, int b, StringRule rule) {
        int s = st[t + AUT], n = st[t + LEN];
        switch (st[t + POS]) {
            case S_ESCAPE -> {
                if (b == 'u') {
                    if (!escapable(rule, s, n)) {
                        return FAIL;
                    }
                    st[t + POS] = S_HEX;
                    st[t + COUNT] = 4;
                    st[t + ACC] = 0;
                    return OK;
                }
                int c = switch (b) {
                    case '"', '\\', '/' -> b;
                    case 'b' -> '\b';
                    case 'f' -> '\f';
                    case 'n' -> '\n';
                    case 'r' -> '\r';
                    case 't' -> '\t';
                    default -> -1;
                };
                if (c < 0) {
                    return FAIL;
                }
                st[t + POS] = S_NORMAL;
                return take(t, rule, c);
            }
            case S_HEX -> {
                int d = Character.digit(b, 16);
                if (d < 0 || b > 'f') {
                    return FAIL;
                }
                int left = st[t + COUNT] - 1, v = st[t + ACC] << 4 | d;
                if (left == 0) {
                    st[t + POS] = S_NORMAL;
                    st[t + ACC] = 0;
                    return v >= 0xd800 && v <= 0xdfff ? FAIL : take(t, rule, v);
                }
                int lo = v << 4 * left, hi = lo | (1 << 4 * left) - 1;
                if (!(rule.canTake(s, n, lo, Math.min(hi, 0xd7ff)) || rule.canTake(s, n, Math.max(lo, 0xe000), hi))) {
                    return FAIL;
                }
                st[t + COUNT] = left;
                st[t + ACC] = v;
                return OK;
            }
            default -> {
                int owed = st[t + LO];
                if (owed > 0) {
                    int range = st[t + HI];
                    if (!Utf8.continues(range, b)) {
                        return FAIL;
                    }
                    int acc = st[t + ACC] << 6 | b & 0x3f;
                    st[t + LO] = --owed;
                    st[t + HI] = 0;
                    if (owed == 0) {
                        st[t + ACC] = 0;
                        return take(t, rule, acc);
                    }
                    st[t + ACC] = acc;
                    return rule.canTake(s, n, acc << 6 * owed, (acc + 1 << 6 * owed) - 1) ? OK : FAIL;
                }
                if (b == '"') {
                    return rule.accepts(s, n) ? popValue() : FAIL;
                }
                if (b == '\\') {
                    if (!escapable(rule, s, n)) {
                        return FAIL;
                    }
                    st[t + POS] = S_ESCAPE;
                    return OK;
                }
                if (b < 0x20) {
                    return FAIL;
                }
                if (b < 0x80) {
                    return take(t, rule, b);
                }
                int more = Utf8.more(b);
                if (more < 0) {
                    return FAIL;
                }
                int range = Utf8.range(b), acc = Utf8.leadBits(b, more);
                if (!rule.canTake(s, n, Utf8.lowest(acc, more, range), Utf8.highest(acc, more, range))) {
                    return FAIL;
                }
                st[t + LO] = more;
                st[t + HI] = range;
                st[t + ACC] = acc;
                return OK;
            }
        }
    }

    /** Whether an escape can write a character here: one of U+0000..U+FFFF outside the surrogates. */
    private static boolean escapable(StringRule rule, int s, int n) {
        return rule.canTake(s, n, 0, 0xd7ff) || rule.canTake(s, n, 0xe000, 0xffff);
    }

    /** Character cp steps the rule; refused if the string could then not be completed. */
    private int take(int t, StringRule rule, int cp) {
        int n = st[t + LEN];
        int next = rule.next(st[t + AUT], cp);
        if (next < 0 || !rule.live(next, n + 1)) {
            return FAIL;
        }
        st[t + AUT] = next;
        if (rule.counts()) {
            st[t + LEN] = n + 1;
        }
        return OK;
    }

    private int number(int t, int b) {
        boolean integer = st[t + PHASE] == 1;
        boolean digit = b >= '0' && b <= '9';
        int s = st[t + POS];
        int next = switch (s) {
            case N_START -> b == '-' ? N_MINUS : b == '0' ? N_ZERO : digit ? N_INT : -1;
            case N_MINUS -> b == '0' ? N_ZERO : digit ? N_INT : -1;
            case N_ZERO, N_INT -> digit && s == N_INT ? N_INT : b == '.' && !integer ? N_DOT
                    : (b == 'e' || b == 'E') && !integer ? N_EXP : -2;
            case N_DOT -> digit ? N_FRACTION : -1;
            case N_FRACTION -> digit ? N_FRACTION : (b == 'e' || b == 'E') ? N_EXP : -2;
            case N_EXP -> b == '+' || b == '-' ? N_EXP_SIGN : digit ? N_EXP_DIGITS : -1;
            case N_EXP_SIGN -> digit ? N_EXP_DIGITS : -1;
            default -> digit ? N_EXP_DIGITS : -2;
        };
        NumberBounds bounds = schema.node(st[t + NODE]).bounds;
        if (next >= 0) {
            if (bounds != null) {
                return boundedNumber(t, next, b - '0', bounds);
            }
            st[t + POS] = next;
            return OK;
        }
        if (next == -2) { // the number ended before this byte, which the frame below must take
            if (bounds != null && !withinBounds(t, bounds)) {
                return FAIL;
            }
            popValue();
            return AGAIN;
        }
        return FAIL;
    }

    /** The number at frame t may end here (its syntax is whole and its bounds met). */
    private boolean numberMayEnd(int t) {
        int s = st[t + POS];
        NumberBounds bounds = schema.node(st[t + NODE]).bounds;
        return (s == N_ZERO || s == N_INT || s == N_FRACTION || s == N_EXP_DIGITS)
                && (bounds == null || withinBounds(t, bounds));
    }

    private boolean withinBounds(int t, NumberBounds bounds) {
        int flags = st[t + LEN];
        return (flags & 2) != 0 || bounds.contains((flags & 1) != 0, mask(t), st[t + COUNT], st[t + ACC]);
    }

    /**
     * A byte that continues a bounded number's syntax into state {@code next}: taken while the number
     * can still end within the bounds. No exponent, at most the bounds' fraction digits.
     */
    private int boundedNumber(int t, int next, int digit, NumberBounds bounds) {
        if (next >= N_EXP) {
            return FAIL;
        }
        int flags = st[t + LEN];
        if ((flags & 2) != 0) { // settled: whatever follows stays within the bounds
            st[t + POS] = next;
            return OK;
        }
        boolean negative = (flags & 1) != 0;
        long whole = mask(t);
        int digits = st[t + COUNT];
        long fraction = st[t + ACC];
        int state;
        switch (next) {
            case N_MINUS -> {
                negative = true;
                state = NumberBounds.MINUS;
            }
            case N_ZERO -> state = NumberBounds.ZERO;
            case N_INT -> {
                whole = whole * 10 + digit;
                state = NumberBounds.INT;
            }
            case N_DOT -> state = NumberBounds.DOT;
            default -> {
                if (digits == bounds.scale) {
                    return FAIL;
                }
                digits++;
                fraction = fraction * 10 + digit;
                state = NumberBounds.FRACTION;
            }
        }
        if (!bounds.reachable(state, negative, whole, digits, fraction)) {
            return FAIL;
        }
        st[t + POS] = next;
        boolean settled = bounds.settled(state, negative, whole);
        st[t + LEN] = (negative ? 1 : 0) | (settled ? 2 : 0);
        setMask(t, settled ? 0 : whole);
        st[t + COUNT] = settled ? 0 : digits;
        st[t + ACC] = settled ? 0 : (int) fraction;
        return OK;
    }

    private byte[][] literals(int t) {
        return st[t + NODE] < 0 ? BUILTIN : schema.node(st[t + NODE]).literals;
    }

    private int literal(int t, int b) {
        byte[][] table = literals(t);
        long mask = mask(t);
        int pos = st[t + POS];
        long next = 0;
        for (int i = 0; i < table.length; i++) {
            if ((mask >>> i & 1) != 0 && table[i].length > pos && (table[i][pos] & 0xff) == b) {
                next |= 1L << i;
            }
        }
        if (next != 0) {
            setMask(t, next);
            st[t + POS] = pos + 1;
            return OK;
        }
        if (literalMayEnd(t)) {
            popValue();
            return AGAIN;
        }
        return FAIL;
    }

    private boolean literalMayEnd(int t) {
        byte[][] table = literals(t);
        long mask = mask(t);
        for (int i = 0; i < table.length; i++) {
            if ((mask >>> i & 1) != 0 && table[i].length == st[t + POS]) {
                return true;
            }
        }
        return false;
    }

    /** The node a value of node i starting with byte b takes: its one alternative, the forced one, or -1 (after a fork). */
    private int choose(int i, int b) {
        int[] leaves = schema.picks(i, b);
        if (leaves.length <= 1) {
            return leaves.length == 0 ? -1 : leaves[0];
        }
        for (int leaf : leaves) {
            if (leaf == forced) {
                forced = -1;
                return leaf;
            }
        }
        forks = leaves;
        return -1;
    }

    /** After a failed step: the alternatives to fork on, or null if the byte simply cannot follow. */
    int[] forks() {
        return forks;
    }

    /** Makes the next ambiguous value take alternative {@code leaf}. */
    void force(int leaf) {
        forced = leaf;
        forks = null;
    }

    /** The top value is complete: pop it and move its container past it. */
    private int popValue() {
        depth--;
        whitespace = 0;
        if (depth > 0) {
            int p = (depth - 1) * F;
            if (st[p + KIND] == OBJECT) {
                st[p + PHASE] = O_AFTER;
            } else if (st[p + KIND] == ARRAY) {
                st[p + COUNT]++;
                st[p + PHASE] = A_AFTER;
            }
        }
        return OK;
    }

    private boolean push(int kind, int node) {
        return push(kind, node, 0, 0, 0, 0);
    }

    private boolean push(int kind, int node, int phase, int pos, int count, long mask) {
        if (depth == MAX_FRAMES) {
            return false;
        }
        depth++;
        set((depth - 1) * F, kind, node, phase, pos, count, mask);
        return true;
    }

    private int replace(int t, int kind, int node, int phase, int pos, int count, long mask) {
        set(t, kind, node, phase, pos, count, mask);
        return OK;
    }

    private void set(int t, int kind, int node, int phase, int pos, int count, long mask) {
        st[t + KIND] = kind;
        st[t + NODE] = node;
        st[t + PHASE] = phase;
        st[t + POS] = pos;
        st[t + COUNT] = count;
        setMask(t, mask);
        st[t + ACC] = 0;
        st[t + AUT] = 0;
        st[t + LEN] = 0;
    }

    private long mask(int t) {
        return (st[t + LO] & 0xffffffffL) | ((long) st[t + HI] << 32);
    }

    private void setMask(int t, long mask) {
        st[t + LO] = (int) mask;
        st[t + HI] = (int) (mask >>> 32);
    }

    private static boolean isSpace(int b) {
        return b == ' ' || b == '\n' || b == '\r' || b == '\t';
    }
}
