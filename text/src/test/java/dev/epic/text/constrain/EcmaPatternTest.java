package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dk.brics.automaton.Automaton;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * JSON Schema patterns as automata, against java.util.regex's search ({@code find}, unanchored like
 * JSON Schema) on hand-picked and random strings; and what cannot be honoured is refused by name.
 */
class EcmaPatternTest {
    private static final List<String> PATTERNS = List.of("abc", "^abc$", "^a|b$", "^[a-c]+x?$", "^\\d{2,4}$",
            "^(ab|cd)*$", "[^a-c]", "^.{3}$", "^\\w+@\\w+\\.(com|org)$", "^[\\d\\-]+$", "^a{2,}b{0,1}$",
            "^(?:x|y)+?z$", "^(?<year>\\d{4})-\\d\\d$", "^\\s*$", "^\\S+$", "^\\W$", "^\\D*$", "^[-.]$",
            "^\\u00e9\\x41$", "^\\.\\*\\+$", "^a{2}$", "^[^\\n]*$", "^x{,3}$", "^[\\t ]+$", "^[A-Z][a-z]*( [A-Z][a-z]*)*$",
            "^\\+?[0-9]{1,3}[ -]?\\(?[0-9]{3}\\)?$", "^[]$", "^[^]$", "^(a|)$");

    private static List<String> samples() {
        List<String> s = new ArrayList<>(List.of("", "abc", "xabcx", "ab", "a", "b", "ba", "aax", "12", "1234", "12345",
                "abcd", "cdab", "d", "ddd", "a\nb", "x@y.com", "x@y.net", "1-2-3", "aa", "aab", "aaab", "xyz", "xz",
                "2026-11", " ", "\t\n", "ab c", "é", "éA", ".*+", "-", ".", "+1 555", "(555)", "x{,3}", "Ab Cd", "Ab cd",
                "\u2028", "😀", "a😀"));
        Random rng = new Random(5);
        String alphabet = "abcdxyz0129 -.\n@+é😀";
        int[] cps = alphabet.codePoints().toArray();
        for (int k = 0; k < 400; k++) {
            StringBuilder b = new StringBuilder();
            for (int n = rng.nextInt(7); n > 0; n--) {
                b.appendCodePoint(cps[rng.nextInt(cps.length)]);
            }
            s.add(b.toString());
        }
        return s;
    }

    @Test
    void matchesWhatJavaRegexFinds() {
        List<String> samples = samples();
        for (String p : PATTERNS) {
            Automaton a = EcmaPattern.compile(p);
            // ECMA reads {,3} as a literal, java.util.regex refuses it. Its [] and [^] differ, and its $ also
            // matches before a final line break, so those are written out ($ is only an anchor in these patterns).
            String j = p.equals("^[]$") ? "^(?!)$" : p.equals("^[^]$") ? "^[\\s\\S]$" : p.replace("{,", "\\{,");
            // ECMA's \s also holds the Unicode spaces, Java's only the ASCII ones.
            String spaces = "\\s\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff";
            Pattern java = Pattern.compile(j.replace("$", "\\z").replace("\\s", "[" + spaces + "]")
                    .replace("\\S", "[^" + spaces + "]"));
            for (String s : samples) {
                boolean ecma = a.run(s);
                assertEquals(java.matcher(s).find(), ecma, "pattern " + p + " on '" + s + "'");
            }
        }
    }

    @Test
    void whatCannotBeHonouredIsRefusedByName() {
        for (String[] c : new String[][] {{"(?=a)b", "lookaround"}, {"(a)\\1", "back-reference"}, {"\\bword", "word boundary"},
                {"\\p{L}", "property"}, {"a^b", "anchor"}, {"(ab", "unclosed"}, {"ab)", "unmatched"}, {"[ab", "unclosed '['"},
                {"a{2000}", "repetition count"}, {"*a", "nothing before"}, {"[\\D]", "negated class escape"},
                {"[z-a]", "out of order"}, {"\\q", "unknown escape"}, {"a**", "nothing before"},
                {"x{2147483647}", "repetition count"}, {"(".repeat(100) + "a" + ")".repeat(100), "nested deeper"},
                {"(a{1000}){1000}", "would build more"}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> EcmaPattern.compile(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), c[0] + ": " + e.getMessage());
        }
    }
}
