package dev.epic.text.constrain;

import dk.brics.automaton.Automaton;
import dk.brics.automaton.BasicAutomata;
import dk.brics.automaton.State;
import dk.brics.automaton.Transition;
import java.util.ArrayList;
import java.util.List;

/**
 * A JSON Schema {@code pattern} (ECMA-262 syntax) as a brics automaton over UTF-16 units. A pattern
 * matches anywhere in the string unless anchored: {@code ^} opening and {@code $} closing a top-level
 * alternative. Supported: literals and escapes ({@code \d \w \s} and their negations, {@code \t \n \r
 * \f \v \0 \xHH \\uHHHH}), {@code .}, classes with ranges, groups ({@code (...)}, {@code (?:...)},
 * {@code (?<name>...)}), alternation, and the quantifiers {@code * + ? {n} {n,} {n,m}} (lazy forms
 * match the same strings). Anything else, such as back-references, lookaround or word boundaries, is
 * refused by name: the automaton could not honour it.
 */
final class EcmaPattern {
    /** Counted repetitions copy the automaton; beyond this a pattern is refused rather than built. */
    static final int MAX_REPEAT = 1000;
    /** Groups nest at most this deep (the parser recurses per group). */
    static final int MAX_DEPTH = 64;
    /**
     * Automaton states a pattern's repetitions may build, all together, before determinisation
     * (counted repetition copies its operand); and the longest pattern taken.
     */
    static final int MAX_NFA_STATES = 100_000, MAX_LENGTH = 10_000;
    private static final char[][] DIGIT = {{'0', '9'}};
    private static final char[][] WORD = {{'0', '9'}, {'A', 'Z'}, {'_', '_'}, {'a', 'z'}};
    private static final char[][] SPACE = {{'\t', '\r'}, {' ', ' '}, {'\u00a0', '\u00a0'}, {'\u1680', '\u1680'},
            {'\u2000', '\u200a'}, {'\u2028', '\u2029'}, {'\u202f', '\u202f'}, {'\u205f', '\u205f'},
            {'\u3000', '\u3000'}, {'\ufeff', '\ufeff'}};
    private static final char SURROGATES = '\ud800', SURROGATES_END = '\udfff';
    /** ECMA's {@code .}: any character but the line terminators. */
    private static final char[][] NOT_LINE = {{'\n', '\n'}, {'\r', '\r'}, {'\u2028', '\u2029'}};

    private final String p;
    private int i;
    private int depth;
    /** States the repetitions built so far. */
    private long built;

    private EcmaPattern(String pattern) {
        this.p = pattern;
    }

    /**
     * The strings the pattern matches somewhere in (JSON Schema's {@code pattern}).
     *
     * @throws IllegalArgumentException naming what in the pattern is not supported
     */
    static Automaton compile(String pattern) {
        return compile(pattern, false);
    }

    /** The strings the pattern matches as a whole, anchors or not (vLLM's guided_regex). */
    static Automaton compileWhole(String pattern) {
        return compile(pattern, true);
    }

    private static Automaton compile(String pattern, boolean whole) {
        if (pattern.length() > MAX_LENGTH) {
            throw new IllegalArgumentException("a pattern of " + pattern.length() + " characters is longer than the "
                    + MAX_LENGTH + " supported");
        }
        EcmaPattern parser = new EcmaPattern(pattern);
        List<Automaton> alternatives = new ArrayList<>();
        do {
            boolean anchoredStart = parser.eat('^') || whole;
            Automaton a = parser.sequence();
            boolean anchoredEnd = parser.eat('$') || whole;
            if (!anchoredStart) {
                a = BasicAutomata.makeAnyString().concatenate(a);
            }
            if (!anchoredEnd) {
                a = a.concatenate(BasicAutomata.makeAnyString());
            }
            alternatives.add(a);
        } while (parser.eat('|'));
        if (parser.i < pattern.length()) {
            throw parser.refuse(pattern.charAt(parser.i) == ')' ? "an unmatched ')'" : "'" + pattern.charAt(parser.i) + "' here");
        }
        return Automaton.union(alternatives);
    }

    private Automaton alternation() {
        List<Automaton> alternatives = new ArrayList<>();
        do {
            alternatives.add(sequence());
        } while (eat('|'));
        return Automaton.union(alternatives);
    }

    private Automaton sequence() {
        Automaton a = BasicAutomata.makeEmptyString();
        while (i < p.length() && p.charAt(i) != '|' && p.charAt(i) != ')') {
            if (p.charAt(i) == '$' && (i + 1 == p.length() || p.charAt(i + 1) == '|')) {
                break; // a top-level end anchor: compile() takes it
            }
            a = a.concatenate(quantified(atom()));
        }
        return a;
    }

    private Automaton atom() {
        char c = p.charAt(i++);
        return switch (c) {
            case '(' -> {
                if (eat('?')) {
                    if (eat(':')) {
                        // a plain group
                    } else if (eat('<') && i < p.length() && p.charAt(i) != '=' && p.charAt(i) != '!') {
                        int close = p.indexOf('>', i);
                        if (close <= i) {
                            throw refuse(close < 0 ? "an unclosed group name" : "an empty group name");
                        }
                        i = close + 1;
                    } else {
                        throw refuse("lookaround and inline flags");
                    }
                }
                if (++depth > MAX_DEPTH) {
                    throw refuse("groups nested deeper than " + MAX_DEPTH);
                }
                Automaton inner = alternation();
                depth--;
                if (!eat(')')) {
                    throw refuse("an unclosed '('");
                }
                yield inner;
            }
            case '[' -> charClass();
            case '.' -> chars(negate(NOT_LINE), true);
            case '\\' -> escape();
            case '^', '$' -> throw refuse("an anchor inside the pattern (only ^ opening and $ closing a top-level alternative)");
            case '*', '+', '?' -> throw refuse("a quantifier with nothing before it");
            case ')', '|' -> throw new IllegalStateException("sequence() stops before " + c);
            default -> {
                if (c == '{' && quantifierAhead(i - 1)) {
                    throw refuse("a quantifier with nothing before it");
                }
                if (Character.isHighSurrogate(c) && i < p.length() && Character.isLowSurrogate(p.charAt(i))) {
                    yield BasicAutomata.makeString(p.substring(i - 1, ++i)); // one character past U+FFFF
                }
                yield BasicAutomata.makeChar(notSurrogate(c));
            }
        };
    }

    /** An atom and its quantifier, if any: one, then optionally '?' for the lazy form (ECMA refuses a second). */
    private Automaton quantified(Automaton a) {
        if (i >= p.length()) {
            return a;
        }
        char c = p.charAt(i);
        int min, max;
        if (c == '*' || c == '+' || c == '?') {
            i++;
            min = c == '+' ? 1 : 0;
            max = c == '?' ? 1 : -1;
        } else if (c == '{' && quantifierAhead(i)) {
            int close = p.indexOf('}', i);
            String[] bounds = p.substring(i + 1, close).split(",", -1);
            i = close + 1;
            min = count(bounds[0]);
            max = bounds.length == 1 ? min : bounds[1].isEmpty() ? -1 : count(bounds[1]);
            if (max >= 0 && max < min) {
                throw refuse("a quantifier {" + min + "," + max + "} out of order");
            }
        } else {
            return a;
        }
        eat('?'); // lazy: the same strings match
        if (i < p.length() && ("*+?".indexOf(p.charAt(i)) >= 0 || p.charAt(i) == '{' && quantifierAhead(i))) {
            throw refuse("a quantifier with nothing before it");
        }
        built += (long) a.getNumberOfStates() * (max < 0 ? min + 1 : max);
        if (built > MAX_NFA_STATES) {
            throw refuse("repetitions that would build more than " + MAX_NFA_STATES + " automaton states");
        }
        return max < 0 ? a.repeat(min) : a.repeat(min, max);
    }

    private int count(String digits) {
        if (digits.length() > 9 || Integer.parseInt(digits) > MAX_REPEAT) {
            throw refuse("a repetition count above " + MAX_REPEAT);
        }
        return Integer.parseInt(digits);
    }

    /** Whether a '{' at {@code at} opens a quantifier {n}, {n,} or {n,m} (otherwise it is a literal, as in ECMA's Annex B). */
    private boolean quantifierAhead(int at) {
        int close = p.indexOf('}', at);
        return close > at && p.substring(at + 1, close).matches("\\d+(,\\d*)?");
    }

    private Automaton escape() {
        if (i >= p.length()) {
            throw refuse("a trailing backslash");
        }
        char c = p.charAt(i++);
        return switch (c) {
            case 'd' -> chars(DIGIT, false);
            case 'D' -> chars(negate(DIGIT), true);
            case 'w' -> chars(WORD, false);
            case 'W' -> chars(negate(WORD), true);
            case 's' -> chars(SPACE, false);
            case 'S' -> chars(negate(SPACE), true);
            default -> {
                char e = escapedChar(c);
                // A character past U+FFFF written as an escaped surrogate pair; a lone surrogate is no character.
                if (Character.isHighSurrogate(e) && p.startsWith("\\u", i)) {
                    int at = i;
                    i += 2;
                    char low = hex(4);
                    if (Character.isLowSurrogate(low)) {
                        yield BasicAutomata.makeString(new String(new char[] {e, low}));
                    }
                    i = at;
                }
                yield BasicAutomata.makeChar(notSurrogate(e));
            }
        };
    }

    /** The character an escape other than a class escape stands for. */
    private char escapedChar(char c) {
        return switch (c) {
            case 't' -> '\t';
            case 'n' -> '\n';
            case 'r' -> '\r';
            case 'f' -> '\f';
            case 'v' -> '\u000b';
            case '0' -> {
                if (i < p.length() && Character.isDigit(p.charAt(i))) {
                    throw refuse("an octal escape");
                }
                yield '\0';
            }
            case 'x' -> hex(2);
            case 'u' -> hex(4);
            case 'b', 'B' -> throw refuse("a word boundary \\" + c);
            case 'p', 'P' -> throw refuse("a Unicode property escape \\" + c);
            case 'c', 'k' -> throw refuse("the escape \\" + c);
            default -> {
                if (Character.isDigit(c)) {
                    throw refuse("a back-reference \\" + c);
                }
                if (Character.isLetterOrDigit(c)) {
                    throw refuse("the unknown escape \\" + c);
                }
                yield c; // escaped punctuation stands for itself
            }
        };
    }

    private char hex(int digits) {
        if (i + digits > p.length() || !p.substring(i, i + digits).matches("[0-9a-fA-F]+")) {
            throw refuse("a malformed hex escape");
        }
        char c = (char) Integer.parseInt(p.substring(i, i + digits), 16);
        i += digits;
        return c;
    }

    private char notSurrogate(char c) {
        if (Character.isSurrogate(c)) {
            throw refuse("a lone surrogate \\u" + Integer.toHexString(c));
        }
        return c;
    }

    /** A [...] class, the '[' already read. */
    private Automaton charClass() {
        boolean negated = eat('^');
        List<char[]> ranges = new ArrayList<>();
        while (i < p.length() && p.charAt(i) != ']') { // ECMA: [] matches nothing, [^] anything
            char lo;
            char c = p.charAt(i++);
            if (c == '\\') {
                if (i >= p.length()) {
                    throw refuse("a trailing backslash");
                }
                char e = p.charAt(i++);
                char[][] shorthand = switch (e) {
                    case 'd' -> DIGIT;
                    case 'w' -> WORD;
                    case 's' -> SPACE;
                    case 'D', 'W', 'S' -> throw refuse("a negated class escape \\" + e + " inside [...]");
                    default -> null;
                };
                if (shorthand != null) {
                    ranges.addAll(List.of(shorthand));
                    continue;
                }
                lo = e == 'b' ? '\b' : escapedChar(e);
            } else {
                lo = c;
            }
            if (Character.isSurrogate(lo)) {
                throw refuse("a class naming characters past U+FFFF");
            }
            char hi = lo;
            if (i + 1 < p.length() && p.charAt(i) == '-' && p.charAt(i + 1) != ']') {
                i++;
                char h = p.charAt(i++);
                if (h == '\\') {
                    if (i >= p.length()) {
                        throw refuse("a trailing backslash");
                    }
                    char e = p.charAt(i++);
                    if ("dwsDWS".indexOf(e) >= 0) {
                        throw refuse("a class escape as a range's end");
                    }
                    h = e == 'b' ? '\b' : escapedChar(e);
                }
                if (Character.isSurrogate(h)) {
                    throw refuse("a class naming characters past U+FFFF");
                }
                if (h < lo) {
                    throw refuse("a range " + lo + "-" + h + " out of order");
                }
                hi = h;
            }
            ranges.add(new char[] {lo, hi});
        }
        if (!eat(']')) {
            throw refuse("an unclosed '['");
        }
        char[][] set = ranges.toArray(char[][]::new);
        return negated ? chars(negate(set), true) : chars(set, false);
    }

    /** Every UTF-16 unit outside the ranges. */
    private static char[][] negate(char[][] ranges) {
        char[][] sorted = ranges.clone();
        java.util.Arrays.sort(sorted, (a, b) -> a[0] - b[0]);
        List<char[]> out = new ArrayList<>();
        int next = 0;
        for (char[] r : sorted) {
            if (r[0] > next) {
                out.add(new char[] {(char) next, (char) (r[0] - 1)});
            }
            next = Math.max(next, r[1] + 1);
        }
        if (next <= 0xffff) {
            out.add(new char[] {(char) next, '\uffff'});
        }
        return out.toArray(char[][]::new);
    }

    /**
     * A set of characters, matched by code point as the validators match. The ranges' surrogate part is
     * no character: {@code wide} sets (a negation, {@code .}, {@code \D}) hold every character past
     * U+FFFF instead, as one surrogate pair; an explicit range up to U+FFFF holds none.
     */
    private Automaton chars(char[][] ranges, boolean wide) {
        // One step from start to end with a transition per range: far fewer states than a union of ranges.
        State start = new State(), end = new State();
        end.setAccept(true);
        boolean pairs = false;
        for (char[] r : ranges) {
            if (r[0] < SURROGATES) {
                start.addTransition(new Transition(r[0], (char) Math.min(r[1], SURROGATES - 1), end));
            }
            if (r[1] > SURROGATES_END) {
                start.addTransition(new Transition((char) Math.max(r[0], SURROGATES_END + 1), r[1], end));
            }
            pairs |= wide && r[0] <= SURROGATES_END && r[1] >= SURROGATES;
        }
        if (pairs) {
            State high = new State();
            start.addTransition(new Transition(SURROGATES, (char) 0xdbff, high));
            high.addTransition(new Transition((char) 0xdc00, SURROGATES_END, end));
        }
        Automaton a = new Automaton();
        a.setInitialState(start);
        return a;
    }

    private boolean eat(char c) {
        if (i < p.length() && p.charAt(i) == c) {
            i++;
            return true;
        }
        return false;
    }

    private IllegalArgumentException refuse(String what) {
        return new IllegalArgumentException("pattern '" + p + "': " + what + " is not supported");
    }
}
