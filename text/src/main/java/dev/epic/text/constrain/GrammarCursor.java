package dev.epic.text.constrain;

import java.util.LinkedHashSet;
import java.util.Set;

/**
 * A position in output text (UTF-8) being written against a {@link Grammar}, as llama.cpp's grammar
 * sampler walks one: the set of stacks of the parses still open. A stack's top is the slot of the
 * character set the next character must be in; below it, where each rule it is inside goes on once
 * that rule ends. A character keeps the stacks whose top holds it, each moved past it and expanded to
 * its next character sets (a rule becomes each of its alternatives; an alternative's end returns to the
 * slot below). An empty stack is a whole parse: the text may end there.
 *
 * <p>A rule called last in an alternative returns nowhere (a tail call), so repetitions, which compile
 * to right recursion, run in a stack of constant depth. States are values: the stacks are immutable and
 * shared, so copies are cheap and {@link #key()} tells equal states apart for the mask cache; each
 * state remembers where the code points taken from it led, so that a grammar's reachable states
 * become, as they are met, a DFA the vocabulary walk mostly looks up.
 */
public final class GrammarCursor extends CodePointCursor<GrammarCursor> {
    /** Stacks a state may hold: an ambiguous grammar could hold exponentially many. */
    static final int MAX_STACKS = 4096;
    /** A grammar whose open parses passed {@link #MAX_STACKS}: the request's grammar, not the server, is at fault. */
    public static final class TooAmbiguous extends IllegalStateException {
        TooAmbiguous(String message) {
            super(message);
        }
    }


    /** One slot of a stack and the rest below it; equal by value. */
    private static final class Stack {
        final int slot;
        final Stack below;
        final int hash;

        Stack(int slot, Stack below) {
            this.slot = slot;
            this.below = below;
            this.hash = 31 * (below == null ? 0 : below.hash) + slot;
        }

        @Override
        public boolean equals(Object o) {
            if (this == o) {
                return true;
            }
            Stack a = this;
            Stack b = o instanceof Stack s ? s : null;
            while (a != null && b != null && a != b) {
                if (a.hash != b.hash || a.slot != b.slot) {
                    return false;
                }
                a = a.below;
                b = b.below;
            }
            return a == b;
        }

        @Override
        public int hashCode() {
            return hash;
        }
    }

    /**
     * A set of open parses (and whether the text may end here), with the states each code point leads to
     * filled in as they are taken: equal sets are one object ({@link Grammar#intern}), so a mask's walk
     * over a vocabulary mostly looks its steps up.
     */
    static final class State {
        final Stack[] stacks;
        final boolean whole;
        private final Set<Stack> set;
        /** Where each ASCII code point leads (DEAD when no parse takes it), filled as taken. */
        private final State[] ascii = new State[128];
        private final java.util.Map<Integer, State> other = new java.util.concurrent.ConcurrentHashMap<>();

        State(Set<Stack> stacks, boolean whole) {
            this.set = Set.copyOf(stacks);
            this.stacks = stacks.toArray(Stack[]::new);
            this.whole = whole;
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof State s && s.whole == whole && s.set.equals(set);
        }

        @Override
        public int hashCode() {
            return set.hashCode() * 2 + (whole ? 1 : 0);
        }
    }

    /** No parse is open and the text cannot end: a code point that leads here is refused. */
    private static final State DEAD = new State(Set.of(), false);

    private final Grammar g;
    private State state;

    GrammarCursor(Grammar g) {
        this.g = g;
        Set<Stack> start = new LinkedHashSet<>();
        boolean whole = false;
        for (int alt : g.alternatives[g.root]) {
            whole |= expand(g, alt, null, start);
        }
        this.state = g.intern(new State(start, whole));
    }

    private GrammarCursor(Grammar g, State state) {
        this.g = g;
        this.state = state;
    }

    /**
     * Adds to {@code out} the stacks that reading from {@code slot}, with {@code below} to return to,
     * leads to, each at a character set; true if it can reach the end of the whole text without one.
     */
    private static boolean expand(Grammar g, int slot, Stack below, Set<Stack> out) {
        while (true) {
            int item = g.code[slot];
            if (item == Grammar.END) {
                if (below == null) {
                    return true;
                }
                slot = below.slot;
                below = below.below;
            } else if (item >= 0) {
                out.add(new Stack(slot, below));
                if (out.size() > MAX_STACKS) {
                    throw new TooAmbiguous("the grammar is too ambiguous: more than " + MAX_STACKS
                            + " parses open at once (rules that can end in many ways, nested)");
                }
                return false;
            } else {
                Stack then = g.code[slot + 1] == Grammar.END ? below : new Stack(slot + 1, below);
                boolean ends = false;
                for (int alt : g.alternatives[-1 - item]) {
                    ends |= expand(g, alt, then, out);
                }
                return ends;
            }
        }
    }

    /** The state after code point {@code cp}: looked up once it has been taken from this state before. */
    private State next(int cp) {
        State known = cp < 128 ? state.ascii[cp] : state.other.get(cp);
        if (known != null) {
            return known;
        }
        Set<Stack> next = new LinkedHashSet<>();
        boolean whole = false;
        for (Stack s : state.stacks) {
            if (g.contains(g.code[s.slot], cp)) {
                whole |= expand(g, s.slot + 1, s.below, next);
            }
        }
        State to = next.isEmpty() && !whole ? DEAD : g.intern(new State(next, whole));
        if (cp < 128) {
            state.ascii[cp] = to; // immutable once made: a race only computes it twice
        } else if (g.remember()) { // a vocabulary walk meets some 20,000 code points: the grammar bounds them all
            state.other.put(cp, to);
        }
        return to;
    }

    @Override
    public GrammarCursor copy() {
        GrammarCursor c = new GrammarCursor(g, state);
        c.copyFrom(this);
        return c;
    }

    @Override
    public void copyFrom(GrammarCursor o) {
        state = o.state;
        copyPartial(o);
    }

    /** Whether some open parse can read a code point in [lo, hi] next. */
    @Override
    boolean canTake(int lo, int hi) {
        for (Stack s : state.stacks) {
            if (g.intersects(g.code[s.slot], lo, hi)) {
                return true;
            }
        }
        return false;
    }

    @Override
    boolean take(int cp) {
        State to = next(cp);
        if (to == DEAD) {
            return false;
        }
        state = to;
        return true;
    }

    @Override
    public boolean complete() {
        return owed == 0 && state.whole;
    }

    @Override
    public Object key() {
        return new Key(state, bits, owed, range);
    }

    private record Key(State state, int bits, int owed, int range) {}
}
