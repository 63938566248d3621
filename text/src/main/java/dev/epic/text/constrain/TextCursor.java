package dev.epic.text.constrain;

/**
 * A position in raw output text (UTF-8) being written against a {@link TextPattern}: each character
 * steps the pattern's automaton, and a byte is refused as soon as no character it can begin keeps the
 * text finishable.
 */
public final class TextCursor implements ByteAutomaton<TextCursor> {
    private final StringRule rule;
    private int state;
    /** A partly read character: its bits so far, the bytes still owed, and the next one's range. */
    private int bits, owed, range;

    TextCursor(StringRule rule) {
        this.rule = rule;
        this.state = rule.start();
    }

    @Override
    public TextCursor copy() {
        TextCursor c = new TextCursor(rule);
        c.copyFrom(this);
        return c;
    }

    @Override
    public void copyFrom(TextCursor o) {
        state = o.state;
        bits = o.bits;
        owed = o.owed;
        range = o.range;
    }

    @Override
    public boolean step(int b) {
        if (owed > 0) {
            if (!Utf8.continues(range, b)) {
                return false;
            }
            bits = bits << 6 | b & 0x3f;
            range = 0;
            if (--owed == 0) {
                return take(bits);
            }
            return rule.canTake(state, 0, bits << 6 * owed, (bits + 1 << 6 * owed) - 1);
        }
        int more = Utf8.more(b);
        if (more < 0) {
            return false;
        }
        if (more == 0) {
            return take(b);
        }
        int r = Utf8.range(b), lead = Utf8.leadBits(b, more);
        if (!rule.canTake(state, 0, Utf8.lowest(lead, more, r), Utf8.highest(lead, more, r))) {
            return false;
        }
        bits = lead;
        owed = more;
        range = r;
        return true;
    }

    private boolean take(int cp) {
        int next = rule.next(state, cp);
        if (next < 0 || !rule.live(next, 0)) {
            return false;
        }
        state = next;
        bits = 0;
        return true;
    }

    @Override
    public boolean complete() {
        return owed == 0 && rule.accepts(state, 0);
    }

    @Override
    public Object key() {
        return new Key(state, bits, owed, range);
    }

    private record Key(int state, int bits, int owed, int range) {}
}
