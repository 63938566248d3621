package dev.epic.text.constrain;

import dk.brics.automaton.Automaton;
import dk.brics.automaton.BasicAutomata;
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
                        if (close < 0) {
                            throw refuse("an unclosed group name");
                        }
                        i = close + 1;
                    } else {
                        throw refuse("lookaround and inline flags");
                    }
                }
                Automaton inner = alternation();
                if (!eat(')')) {
                    throw refuse("an unclosed '('");
                }
                yield inner;
            }
            case '[' -> chars(charClass());
            case '.' -> chars(negate(NOT_LINE));
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
                yield BasicAutomata.makeChar(c);
            }
        };
    }

    private Automaton quantified(Automaton a) {
        while (i < p.length()) {
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
            a = max < 0 ? a.repeat(min) : a.repeat(min, max);
        }
        return a;
    }

    private int count(String digits) {
        int n = Integer.parseInt(digits);
        if (n > MAX_REPEAT) {
            throw refuse("a repetition count above " + MAX_REPEAT);
        }
        return n;
    }

    /** Whether a '{' at {@code at} opens a quantifier {n}, {n,} or {n,m} (otherwise it is a literal, as in ECMA's Annex B). */
    private boolean quantifierAhead(int at) {
        int close = p.indexOf('}', at);
        return close > at && p.substring(at + 1, close).matches("\\d{1,9}(,\\d{0,9})?");
    }

    private Automaton escape() {
        if (i >= p.length()) {
            throw refuse("a trailing backslash");
        }
        char c = p.charAt(i++);
        return switch (c) {
            case 'd' -> chars(DIGIT);
            case 'D' -> chars(negate(DIGIT));
            case 'w' -> chars(WORD);
            case 'W' -> chars(negate(WORD));
            case 's' -> chars(SPACE);
            case 'S' -> chars(negate(SPACE));
            default -> BasicAutomata.makeChar(escapedChar(c));
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

    /** The ranges of a [...] class, the '[' already read. */
    private char[][] charClass() {
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
        return negated ? negate(set) : set;
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
     * A set of characters. A set holding every surrogate (a negation, {@code .}, {@code \\D}) holds every
     * character past U+FFFF, as one surrogate pair, so that it matches code points as the validators do.
     */
    private Automaton chars(char[][] ranges) {
        List<Automaton> parts = new ArrayList<>();
        for (char[] r : ranges) {
            if (r[1] < SURROGATES || r[0] > SURROGATES_END) {
                parts.add(BasicAutomata.makeCharRange(r[0], r[1]));
                continue;
            }
            if (r[0] > SURROGATES || r[1] < SURROGATES_END) {
                throw refuse("a class naming characters past U+FFFF");
            }
            if (r[0] < SURROGATES) {
                parts.add(BasicAutomata.makeCharRange(r[0], (char) (SURROGATES - 1)));
            }
            if (r[1] > SURROGATES_END) {
                parts.add(BasicAutomata.makeCharRange((char) (SURROGATES_END + 1), r[1]));
            }
            parts.add(BasicAutomata.makeCharRange(SURROGATES, (char) 0xdbff)
                    .concatenate(BasicAutomata.makeCharRange((char) 0xdc00, SURROGATES_END)));
        }
        return parts.isEmpty() ? BasicAutomata.makeEmpty() : Automaton.union(parts);
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
