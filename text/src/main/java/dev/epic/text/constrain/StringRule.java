package dev.epic.text.constrain;

import dk.brics.automaton.Automaton;
import dk.brics.automaton.State;
import dk.brics.automaton.Transition;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * What a string's characters must satisfy ({@code pattern}, {@code format}, {@code minLength},
 * {@code maxLength}): a deterministic automaton over Unicode code points with the length bounds
 * beside it. Lengths count code points, as JSON Schema does. The cursor asks whether some character
 * in a range of code points keeps the string completable ({@link #canTake}), so a partly written
 * UTF-8 sequence or escape is refused as soon as no character it could become would do.
 */
final class StringRule {
    /** Subset construction stops here: a pattern needing more states is refused. */
    static final int MAX_STATES = 4096;
    /**
     * Nor may it visit more transitions than this (summed over the subsets): ambiguous repetitions such
     * as {@code (a{1,100}){1,100}} make every subset hold thousands of states long before MAX_STATES,
     * and took seconds of a request thread each (this bound: about 0.2 s). Real patterns need a few
     * thousand: a date-time or an e-mail address under 100, 200 alternations of four words 5,000.
     */
    static final long MAX_WORK = 250_000;
    /** Bits of the length table (states x lengths) a rule may hold. */
    private static final long MAX_LENGTH_BITS = 1L << 25;
    private static final int SURROGATES = 0xd800, SURROGATES_END = 0xdfff, LOW_SURROGATES = 0xdc00;

    final int minLength;
    /** Integer.MAX_VALUE: no maximum. */
    final int maxLength;
    /** Per state: sorted, disjoint code-point ranges and where each goes. */
    private final int[][] from, to, target;
    private final boolean[] accept;
    /**
     * With length bounds, lengths[s]: the lengths L (in code points) of accepted strings from state s,
     * for L up to the table's end. Without, finishable[s]: some accepted string continues from s.
     */
    private final BitSet[] lengths;
    private final boolean[] finishable;
    private final int tableEnd;

    /** A rule of at most {@link #MAX_STATES} automaton states. */
    StringRule(Automaton chars, int minLength, int maxLength, String where) {
        this(chars, minLength, maxLength, MAX_STATES, where);
    }

    StringRule(Automaton chars, int minLength, int maxLength, int maxStates, String where) {
        if (minLength < 0 || maxLength < minLength) {
            throw new IllegalArgumentException(where + ": minLength/maxLength allow no string");
        }
        this.minLength = minLength;
        this.maxLength = maxLength;
        List<int[]> units = new ArrayList<>();
        List<Boolean> accepting = new ArrayList<>();
        determinize(chars, units, accepting, maxStates, where);
        int n = units.size();
        from = new int[n][];
        to = new int[n][];
        target = new int[n][];
        accept = new boolean[n];
        for (int s = 0; s < n; s++) {
            accept[s] = accepting.get(s);
            codePoints(s, units);
        }
        if (counts()) {
            tableEnd = maxLength == Integer.MAX_VALUE ? minLength + n : maxLength;
            if ((long) n * (tableEnd + 1) > MAX_LENGTH_BITS) {
                throw new IllegalArgumentException(where + ": the pattern with minLength/maxLength is too large to enforce");
            }
            lengths = acceptedLengths(n);
            finishable = null;
        } else {
            tableEnd = 0;
            lengths = null;
            finishable = finishable(n);
        }
    }

    int start() {
        return 0;
    }

    /** Whether lengths are counted at all (otherwise the cursor keeps 0 and states stay fewer). */
    boolean counts() {
        return minLength > 0 || maxLength != Integer.MAX_VALUE;
    }

    /**
     * The count as a cursor's state key holds it: counts that no token can tell apart are one key, so
     * their masks are computed once. Past minLength with no maximum, every count is alike; with a
     * maximum farther away than a token's characters ({@code horizon}, the vocabulary's longest token
     * in bytes) plus the automaton's states (past which a shortest accepted path never reaches), so is
     * every count, since within one token the string can neither run into the maximum nor need to.
     */
    int lengthKey(int count, int horizon) {
        if (maxLength == Integer.MAX_VALUE) {
            return Math.min(count, minLength);
        }
        return count >= minLength && (long) maxLength - count >= (long) horizon + from.length ? -1 : count;
    }

    /** Whether a string in state s with {@code count} characters may end here. */
    boolean accepts(int s, int count) {
        return accept[s] && count >= minLength && count <= maxLength;
    }

    /** Whether a string in state s with {@code count} characters can still be completed. */
    boolean live(int s, int count) {
        if (finishable != null) {
            return finishable[s];
        }
        int lo = Math.max(0, minLength - count);
        int hi = maxLength == Integer.MAX_VALUE ? lo + from.length : maxLength - count;
        if (hi < lo) {
            return false;
        }
        int l = lengths[s].nextSetBit(lo);
        return l >= 0 && l <= hi;
    }

    /** The state after code point cp, or -1. */
    int next(int s, int cp) {
        int[] f = from[s], t = to[s];
        int k = Arrays.binarySearch(f, cp);
        k = k >= 0 ? k : -k - 2;
        return k >= 0 && cp <= t[k] ? target[s][k] : -1;
    }

    /** Whether some code point in [lo, hi] (surrogates aside) leads from state s to a completable string. */
    boolean canTake(int s, int count, int lo, int hi) {
        int[] f = from[s], t = to[s], g = target[s];
        for (int k = 0; k < f.length && f[k] <= hi; k++) {
            if (t[k] >= lo && live(g[k], count + 1)) {
                return true;
            }
        }
        return false;
    }

    /** Subset construction over UTF-16 units, capped at MAX_STATES: each state's unit ranges as {lo, hi, target} triples. */
    private static void determinize(Automaton a, List<int[]> units, List<Boolean> accepting, int maxStates, String where) {
        Map<State, Integer> number = new HashMap<>();
        for (State s : a.getStates()) {
            number.put(s, number.size());
        }
        State[] byNumber = new State[number.size()];
        number.forEach((s, k) -> byNumber[k] = s);
        // Subsets as sorted state numbers: small keys even where the automaton is large (a long choice list).
        Map<Subset, Integer> ids = new HashMap<>();
        List<Subset> subsets = new ArrayList<>();
        Subset start = new Subset(new int[] {number.get(a.getInitialState())});
        ids.put(start, 0);
        subsets.add(start);
        ArrayDeque<Integer> work = new ArrayDeque<>(List.of(0));
        long visited = 0, maxWork = Math.max(MAX_WORK, 2L * maxStates); // a long choice list's trie: one pass
        // Subsets are numbered as found and the queue is first in, first out: they are visited in number order.
        while (!work.isEmpty()) {
            int id = work.poll();
            List<Transition> ts = new ArrayList<>();
            boolean acc = false;
            for (int k : subsets.get(id).states()) {
                ts.addAll(byNumber[k].getTransitions());
                acc |= byNumber[k].isAccept();
            }
            visited += ts.size();
            if (visited > maxWork) {
                throw new IllegalArgumentException(where + ": the pattern is too ambiguous to enforce (its automaton "
                        + "would take more than " + maxWork + " transitions to build)");
            }
            accepting.add(acc);
            // Sweep the unit axis: at each transition's start it joins the active ones, past its end it
            // leaves; between two such points the active transitions' targets are one subset.
            int[][] events = new int[2 * ts.size()][];
            for (int k = 0; k < ts.size(); k++) {
                Transition t = ts.get(k);
                events[2 * k] = new int[] {t.getMin(), number.get(t.getDest()), 1};
                events[2 * k + 1] = new int[] {t.getMax() + 1, number.get(t.getDest()), -1};
            }
            Arrays.sort(events, (x, y) -> Integer.compare(x[0], y[0]));
            java.util.TreeMap<Integer, Integer> active = new java.util.TreeMap<>(); // target -> transitions to it
            List<Integer> triples = new ArrayList<>();
            for (int e = 0; e < events.length; ) {
                int at = events[e][0];
                for (; e < events.length && events[e][0] == at; e++) {
                    active.merge(events[e][1], events[e][2], (x, y) -> x + y == 0 ? null : x + y);
                }
                if (active.isEmpty() || e == events.length) {
                    continue;
                }
                int lo = at, hi = events[e][0] - 1;
                Subset dest = new Subset(active.keySet().stream().mapToInt(Integer::intValue).toArray());
                Integer known = ids.get(dest);
                int d;
                if (known == null) {
                    if (subsets.size() == maxStates) {
                        throw new IllegalArgumentException(where + ": the pattern needs more than " + maxStates
                                + " automaton states");
                    }
                    d = subsets.size();
                    ids.put(dest, d);
                    subsets.add(dest);
                    work.add(d);
                } else {
                    d = known;
                }
                int n = triples.size();
                if (n > 0 && triples.get(n - 1) == d && triples.get(n - 2) == lo - 1) {
                    triples.set(n - 2, hi); // extends the previous piece
                } else {
                    triples.add(lo);
                    triples.add(hi);
                    triples.add(d);
                }
            }
            units.add(triples.stream().mapToInt(Integer::intValue).toArray());
        }
    }

    /** A set of automaton states, by their sorted numbers. */
    private record Subset(int[] states) {
        @Override
        public boolean equals(Object o) {
            return o instanceof Subset other && Arrays.equals(states, other.states);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(states);
        }
    }

    /**
     * State s's code-point ranges: its units outside the surrogates as they are, and each high surrogate
     * joined with the low surrogates its target takes (a lone surrogate is no character).
     */
    private void codePoints(int s, List<int[]> units) {
        List<int[]> ranges = new ArrayList<>();
        int[] u = units.get(s);
        for (int k = 0; k < u.length; k += 3) {
            int lo = u[k], hi = u[k + 1], t = u[k + 2];
            if (lo < SURROGATES) {
                ranges.add(new int[] {lo, Math.min(hi, SURROGATES - 1), t});
            }
            if (hi > SURROGATES_END) {
                ranges.add(new int[] {Math.max(lo, SURROGATES_END + 1), hi, t});
            }
            for (int high = Math.max(lo, SURROGATES); high <= Math.min(hi, LOW_SURROGATES - 1); high++) {
                int base = 0x10000 + (high - SURROGATES) * 0x400 - LOW_SURROGATES;
                int[] v = units.get(t);
                for (int j = 0; j < v.length; j += 3) {
                    int l0 = Math.max(v[j], LOW_SURROGATES), l1 = Math.min(v[j + 1], SURROGATES_END);
                    if (l0 <= l1) {
                        ranges.add(new int[] {base + l0, base + l1, v[j + 2]});
                    }
                }
            }
        }
        ranges.sort((a, b) -> Integer.compare(a[0], b[0]));
        List<int[]> merged = new ArrayList<>();
        for (int[] r : ranges) {
            int[] last = merged.isEmpty() ? null : merged.getLast();
            if (last != null && last[2] == r[2] && last[1] + 1 == r[0]) {
                last[1] = r[1];
            } else {
                merged.add(r);
            }
        }
        from[s] = merged.stream().mapToInt(r -> r[0]).toArray();
        to[s] = merged.stream().mapToInt(r -> r[1]).toArray();
        target[s] = merged.stream().mapToInt(r -> r[2]).toArray();
    }

    /** Backwards from the accepting states: the states some accepted string continues from. */
    private boolean[] finishable(int n) {
        List<List<Integer>> before = new ArrayList<>();
        for (int s = 0; s < n; s++) {
            before.add(new ArrayList<>());
        }
        for (int s = 0; s < n; s++) {
            for (int g : target[s]) {
                before.get(g).add(s);
            }
        }
        boolean[] ok = new boolean[n];
        ArrayDeque<Integer> work = new ArrayDeque<>();
        for (int s = 0; s < n; s++) {
            if (accept[s]) {
                ok[s] = true;
                work.add(s);
            }
        }
        while (!work.isEmpty()) {
            for (int p : before.get(work.poll())) {
                if (!ok[p]) {
                    ok[p] = true;
                    work.add(p);
                }
            }
        }
        return ok;
    }

    /** Backwards from the accepting states: state s accepts after exactly L more code points. */
    private BitSet[] acceptedLengths(int n) {
        BitSet[] lengths = new BitSet[n];
        for (int s = 0; s < n; s++) {
            lengths[s] = new BitSet();
        }
        BitSet layer = new BitSet();
        for (int s = 0; s < n; s++) {
            if (accept[s]) {
                layer.set(s);
            }
        }
        for (int l = 0; l <= tableEnd && !layer.isEmpty(); l++) {
            BitSet before = new BitSet();
            for (int s = 0; s < n; s++) {
                if (layer.get(s)) {
                    lengths[s].set(l);
                }
                for (int g : target[s]) {
                    if (layer.get(g)) {
                        before.set(s);
                        break;
                    }
                }
            }
            layer = before;
        }
        return lengths;
    }
}
