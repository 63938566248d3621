package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.text.generate.Delta;
import dev.epic.text.generate.FinishReason;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationOptions;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The whole output held to a GBNF grammar (vLLM's guided_grammar). */
class GrammarTest {
    private static final Tokenizer V3 = Tokenizer.deepSeekV3();

    /** -1: some byte cannot follow; 0: a valid prefix; 1: a whole answer. */
    private static int verdict(Grammar g, String text) {
        GrammarCursor c = g.start();
        return !c.step(text.getBytes(StandardCharsets.UTF_8)) ? -1 : c.complete() ? 1 : 0;
    }

    /**
     * Regular grammars against the same language written as a Java regex: every text, and every prefix
     * of it, is judged as the regex judges it (a prefix is live when some text in the language starts
     * with it: checked by the grammar's own completions).
     */
    @Test
    void regularGrammarsMatchWhatTheEquivalentRegexMatches() {
        List<String> texts = List.of("", "a", "ab", "abc", "abcabc", "x", "12", "123", "1234", "-7", "é", "éé", "😀",
                "yes", "no", "yes,no", "yes, no", "a\nb", "\"q\"", "[1,2]", "SELECT col_1 from table_2 where col_1 = 2",
                "a-b-c", "aaaa", "aaaaa", "ab12");
        String[][] cases = {
            {"root ::= \"abc\"", "abc"},
            {"root ::= (\"abc\")+", "(?:abc)+"},
            {"root ::= [0-9]{2,3}", "[0-9]{2,3}"},
            {"root ::= \"-\"? [0-9]+", "-?[0-9]+"},
            {"root ::= [a-z]+ (\"-\" [a-z]+)*", "[a-z]+(?:-[a-z]+)*"},
            {"root ::= answer (\",\" \" \"? answer)*\nanswer ::= \"yes\" | \"no\"", "(?:yes|no)(?:, ?(?:yes|no))*"},
            {"root ::= [^0-9]*", "[^0-9]*"},
            {"root ::= . \"\\n\" .", ".\\n.", "s"},
            {"root ::= \"\\\"\" [a-z]* \"\\\"\"", "\"[a-z]*\""},
            {"root ::= \"\\u00e9\"{1,2} | \"\\U0001F600\"", "é{1,2}|😀"},
            {"root ::= \"a\"{4}", "a{4}"},
            {"root ::= \"a\"{2,}", "a{2,}"},
            {"root ::= [a-c]{0,4} [0-9]*", "[a-c]{0,4}[0-9]*"},
            {"# a comment\nroot ::= select   # trailing\nselect ::= \"SELECT \" column \" from \" table \" where \" cond\n"
                    + "column ::= \"col_1\" | \"col_2\"\ntable ::= \"table_1\" | \"table_2\"\ncond ::= column \" = \" number\n"
                    + "number ::= [1-2]",
                "SELECT col_[12] from table_[12] where col_[12] = [12]"},
            {"root ::= \"[\" (num (\",\" num)*)? \"]\"\nnum ::= [0-9]+", "\\[(?:[0-9]+(?:,[0-9]+)*)?\\]"},
        };
        for (String[] c : cases) {
            Grammar g = Grammar.compile(c[0]);
            Pattern java = c.length > 2 ? Pattern.compile(c[1], Pattern.DOTALL) : Pattern.compile(c[1]);
            for (String t : texts) {
                java.util.regex.Matcher m = java.matcher(t);
                boolean matches = m.matches();
                boolean prefix = matches || m.hitEnd(); // false: the text went wrong before its end
                assertEquals(matches, verdict(g, t) == 1, c[0] + " on '" + t + "'");
                if (verdict(g, t) >= 0) {
                    assertTrue(Walks.finishable(g.start(), t), c[0] + ": a dead end after '" + t + "'");
                }
                if (!prefix) {
                    assertEquals(-1, verdict(g, t), c[0] + ": '" + t + "' starts no match");
                }
            }
        }
    }

    /** What a regex cannot say: nesting to any depth, a palindrome's two halves. */
    @Test
    void contextFreeLanguagesAreRecognised() {
        Grammar parens = Grammar.compile("root ::= item*\nitem ::= \"(\" item* \")\" | \"x\"");
        for (String t : List.of("", "x", "()", "(x)", "((x)(()))x", "(((((((((())))))))))")) {
            assertEquals(1, verdict(parens, t), t);
        }
        assertEquals(0, verdict(parens, "(()"));
        assertEquals(0, verdict(parens, "((((((((((x"));
        assertEquals(-1, verdict(parens, "())"));
        assertEquals(-1, verdict(parens, "(y)"));

        Grammar palindrome = Grammar.compile("root ::= \"a\" root \"a\" | \"b\" root \"b\" | \"c\"");
        assertEquals(1, verdict(palindrome, "abacaba"));
        assertEquals(1, verdict(palindrome, "c"));
        assertEquals(0, verdict(palindrome, "abac"));
        assertEquals(-1, verdict(palindrome, "abacab" + "b"));
        assertEquals(-1, verdict(palindrome, "abacabaa"));

        // A JSON-like grammar: objects nest, strings escape.
        Grammar json = Grammar.compile("""
                root   ::= value
                value  ::= object | array | string | number | ("true" | "false" | "null")
                object ::= "{" ws ( string ws ":" ws value ws ("," ws string ws ":" ws value ws)* )? "}"
                array  ::= "[" ws ( value ws ("," ws value ws)* )? "]"
                string ::= "\\"" ( [^"\\\\] | "\\\\" ["\\\\/bfnrt] )* "\\""
                number ::= "-"? [0-9]+ ("." [0-9]+)?
                ws     ::= [ \\t\\n]*
                """);
        for (String t : List.of("{}", "{\"a\": [1, 2.5, {\"b\": null}], \"c\": \"x\\\"y\"}", "[[[]]]", "-0.5", "true")) {
            assertEquals(1, verdict(json, t), t);
        }
        assertEquals(0, verdict(json, "{\"a\": [1, "));
        assertEquals(-1, verdict(json, "{\"a\" 1}"));
        assertEquals(-1, verdict(json, "[1,]"));
    }

    /** Mistakes are refused with what and where; alternatives that can never end are dropped. */
    @Test
    void badGrammarsAreRefusedByWhatAndWhere() {
        String[][] cases = {
            {"", "empty"},
            {"root ::= item", "rule 'item' is used but not defined (at 1:10)"},
            {"start ::= \"a\"", "no 'root' rule"},
            {"root ::= \"a\"\nroot ::= \"b\"", "rule 'root' is defined twice (at 2:1)"},
            {"root ::= expr\nexpr ::= expr \"+\" term | term\nterm ::= [0-9]", "left-recursive (expr -> expr)"},
            {"root ::= a\na ::= b? \"x\" | c\nb ::= \"y\"\nc ::= \"z\"? a", "left-recursive (a -> c -> a)"},
            {"root ::= (\"a\"?)*", "left-recursive (root -> root)"},
            {"root ::= \"a\" root", "matches no text"},
            {"root ::= \"abc", "a string is not closed"},
            {"root ::= [a-", "a '[' is not closed (at 1:10)"},
            {"root ::= [z-a]", "character range"},
            {"root ::= (\"a\"", "a '(' is not closed"},
            {"root ::= \"a\")", "a ')' without its '('"},
            {"root ::= \"a\"{3,2}", "at most 2 and at least 3"},
            {"root ::= \"a\"{2000}", "above 1000"},
            {"root ::= \"\\q\"", "unknown escape '\\q' in a string"},
            {"root ::= \"\\xZZ\"", "2 hex digits"},
            {"root ::= \"\\uD800\"", "is not a character"},
            {"?start: \"a\"", "Lark's 'name: ...' is not supported"},
            {"root: \"a\"", "Lark's 'name: ...' is not supported"},
            {"root ::= @", "unexpected '@'"},
        };
        String huge = "root ::= " + "(\"a\"{0,1000})".repeat(40); // 40 uses of 1,000 nested options
        cases = java.util.stream.Stream.concat(java.util.Arrays.stream(cases), java.util.stream.Stream.<String[]>of(
                new String[] {huge, "too large"})).toArray(String[][]::new);
        for (String[] c : cases) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Grammar.compile(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), c[0] + ": " + e.getMessage());
        }
        // An alternative through a rule that never ends is dropped; the rest of the grammar stands.
        Grammar g = Grammar.compile("root ::= \"a\" | \"b\" loop\nloop ::= \"x\" loop");
        assertEquals(1, verdict(g, "a"));
        assertEquals(-1, verdict(g, "b"));
        assertTrue(Grammar.compile("root ::= \"q\"") == Grammar.compile("root ::= \"q\""), "compiled once");
    }

    /** A grammar whose parses multiply is stopped with a message, not left to eat the heap. */
    @Test
    void aTooAmbiguousGrammarIsStopped() {
        // After n x's, what must close them is any of 2^n strings of y's and z's: a stack for each.
        Grammar g = Grammar.compile("root ::= \"x\" root \"y\" | \"x\" root \"z\" | \"\"");
        assertEquals(1, verdict(g, "xxxzyy"));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> verdict(g, "x".repeat(20)));
        assertTrue(e.getMessage().contains("too ambiguous"), e.getMessage());
    }

    /**
     * Generations from random logits under the mask: every finished answer is in the language, ended by
     * EOS, and the masks are those of stepping every token through the cursor.
     */
    @Test
    void generationsWriteSentencesOfTheGrammar() {
        Random rng = new Random(7);
        Grammar g = Grammar.compile("""
                root ::= "The answer is " (number | word) " (" confidence "%)."
                number ::= "-"? [1-9] [0-9]{0,3}
                word ::= [a-z]{1,12}
                confidence ::= [1-9] [0-9]?
                """);
        Pattern java = Pattern.compile("The answer is (?:-?[1-9][0-9]{0,3}|[a-z]{1,12}) \\([1-9][0-9]?%\\)\\.");
        TokenMask<GrammarCursor> mask = g.mask(V3);
        for (int run = 0; run < 4; run++) {
            GrammarCursor walk = g.start();
            Generation gen = new Generation(V3, new int[] {0}, SamplingParams.builder().temperature(1f).seed(run)
                    .maxTokens(60).build(), GenerationOptions.defaults().withTextLanguage(g));
            StringBuilder content = new StringBuilder();
            int step = 0;
            while (!gen.finished()) {
                if (step++ < 6 && run < 2) {
                    assertEquals(BruteForce.allowed(V3, walk), mask.allowed(walk), "step " + step);
                }
                float[] logits = new float[V3.size()];
                for (int i = 0; i < logits.length; i++) {
                    logits[i] = (float) rng.nextGaussian() * 2;
                }
                int id = gen.sample(logits);
                Delta d = gen.accept(id);
                walk.step(V3.tokenBytes(id));
                content.append(d.content());
            }
            assertEquals(FinishReason.EOS, gen.finishReason(), content.toString());
            assertTrue(java.matcher(content.toString()).matches(), content.toString());
        }
        assertFalse(mask.allowed(g.start()).isEmpty());
    }
}
