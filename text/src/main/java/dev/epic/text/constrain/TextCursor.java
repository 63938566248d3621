package dev.epic.text.constrain;

/**
 * A position in raw output text (UTF-8) being written against a {@link TextPattern}: each character
 * steps the pattern's automaton, and a byte is refused as soon as no character it can begin keeps the
 * text finishable.
 */
public final class TextCursor extends CodePointCursor<TextCursor> {
    private final StringRule rule;
    private int state;

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
        copyPartial(o);
    }

    @Override
    boolean canTake(int lo, int hi) {
        return rule.canTake(state, 0, lo, hi);
    }

    @Override
    boolean take(int cp) {
        int next = rule.next(state, cp);
        if (next < 0 || !rule.live(next, 0)) {
            return false;
        }
        state = next;
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
