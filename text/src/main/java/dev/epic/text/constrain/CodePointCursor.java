package dev.epic.text.constrain;

/**
 * A byte automaton over text whose language is defined on code points: it reads UTF-8 a byte at a time,
 * refusing a lead or continuation byte as soon as no character it can begin may come next, and hands
 * each whole character to {@link #take}.
 */
abstract class CodePointCursor<A extends CodePointCursor<A>> implements ByteAutomaton<A> {
    /** A partly read character: its bits so far, the bytes still owed, and the next one's range. */
    int bits, owed, range;

    /** Whether the next character may be some code point in [lo, hi]. */
    abstract boolean canTake(int lo, int hi);

    /** Moves past a whole character; false (the state unchanged) if it cannot come next. */
    abstract boolean take(int cp);

    @Override
    public final boolean step(int b) {
        if (owed > 0) {
            if (!Utf8.continues(range, b)) {
                return false;
            }
            bits = bits << 6 | b & 0x3f;
            range = 0;
            if (--owed == 0) {
                return whole(bits);
            }
            return canTake(bits << 6 * owed, (bits + 1 << 6 * owed) - 1);
        }
        int more = Utf8.more(b);
        if (more < 0) {
            return false;
        }
        if (more == 0) {
            return whole(b);
        }
        int r = Utf8.range(b);
        int lead = Utf8.leadBits(b, more);
        if (!canTake(Utf8.lowest(lead, more, r), Utf8.highest(lead, more, r))) {
            return false;
        }
        bits = lead;
        owed = more;
        range = r;
        return true;
    }

    private boolean whole(int cp) {
        if (!take(cp)) {
            return false;
        }
        bits = 0;
        return true;
    }

    /** Takes over {@code o}'s partly read character. */
    final void copyPartial(CodePointCursor<?> o) {
        bits = o.bits;
        owed = o.owed;
        range = o.range;
    }
}
