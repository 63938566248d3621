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

/** The whole output held to a regex or a list of choices (vLLM's guided_regex and guided_choice). */
class TextPatternTest {
    private static final Tokenizer V3 = Tokenizer.deepSeekV3();

    /** -1: some byte cannot follow; 0: a valid prefix; 1: a whole answer. */
    private static int verdict(TextPattern p, String text) {
        TextCursor c = p.start();
        return !c.step(text.getBytes(StandardCharsets.UTF_8)) ? -1 : c.complete() ? 1 : 0;
    }

    @Test
    void aRegexMatchesTheWholeText() {
        List<String> texts = List.of("", "a", "ab", "abc", "xabc", "abcx", "12", "123", "1234", "é1", "a\nb", "Yes", "yes",
                "😀😀", "2026-11-26", "a-b-c");
        for (String regex : List.of("abc", "^abc$", "\\d{2,3}", "[a-z]+(-[a-z]+)*", "(?:Y|y)es|No", "é\\d", ".\\n.",
                "😀+", "\\d{4}-\\d\\d-\\d\\d", "[^\\d]*")) {
            TextPattern p = TextPattern.regex(regex);
            Pattern java = Pattern.compile(regex);
            for (String t : texts) {
                assertEquals(java.matcher(t).matches(), verdict(p, t) == 1, regex + " on '" + t + "'");
                if (verdict(p, t) >= 0) {
                    assertTrue(Walks.finishable(p.start(), t), regex + ": a dead end after '" + t + "'");
                }
            }
        }
    }

    @Test
    void aChoiceIsOneOfTheTextsExactly() {
        TextPattern p = TextPattern.choice(List.of("yes", "no", "not sure", "é😀"));
        for (String t : List.of("yes", "no", "not sure", "é😀")) {
            assertEquals(1, verdict(p, t), t);
        }
        assertEquals(0, verdict(p, "not"));
        assertEquals(0, verdict(p, "é"));
        assertEquals(-1, verdict(p, "yes "));
        assertEquals(-1, verdict(p, "maybe"));
        assertTrue(TextPattern.choice(List.of("yes", "no")) == TextPattern.choice(List.of("yes", "no")), "compiled once");
    }

    /** A realistic label list compiles as a trie, however many states it needs; a huge one is refused by size. */
    @Test
    void longChoiceListsCompile() {
        List<String> labels = new java.util.ArrayList<>();
        for (int i = 0; i < 1000; i++) {
            labels.add(String.format("label-%04d-%s", i, "x".repeat(20 + i % 7)));
        }
        TextPattern p = TextPattern.choice(labels);
        assertEquals(1, verdict(p, labels.get(617)));
        assertEquals(-1, verdict(p, "label-9999"));
        List<String> huge = java.util.Collections.nCopies(2, "y".repeat(TextPattern.MAX_CHOICE_CHARS));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TextPattern.choice(huge)).getMessage()
                .contains("characters"));
    }

    @Test
    void whatCannotBeHonouredIsRefused() {
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TextPattern.regex("(a)\\1")).getMessage()
                .contains("back-reference"));
        assertThrows(IllegalArgumentException.class, () -> TextPattern.regex("[]"));
        assertThrows(IllegalArgumentException.class, () -> TextPattern.choice(List.of()));
        // Nested counted repetitions: small to write, and every automaton state a set of thousands.
        assertTrue(assertThrows(IllegalArgumentException.class, () -> TextPattern.regex("(a{1,100}){1,100}"))
                .getMessage().contains("too ambiguous"));
    }

    /** Generations from random logits under the mask: every finished answer is a match, ended by EOS. */
    @Test
    void generationsWriteMatches() {
        Random rng = new Random(4);
        Pattern date = Pattern.compile("\\d{4}-\\d\\d-\\d\\d");
        for (int run = 0; run < 6; run++) {
            boolean choice = run % 2 == 0;
            TextPattern p = choice ? TextPattern.choice(List.of("positive", "negative", "neutral"))
                    : TextPattern.regex("\\d{4}-\\d\\d-\\d\\d");
            TokenMask<TextCursor> mask = p.mask(V3);
            TextCursor walk = p.start();
            Generation g = new Generation(V3, new int[] {0}, SamplingParams.builder().temperature(1f).seed(run)
                    .maxTokens(40).build(), GenerationOptions.defaults().withTextLanguage(p));
            StringBuilder content = new StringBuilder();
            int step = 0;
            while (!g.finished()) {
                if (step++ < 3) {
                    assertEquals(BruteForce.allowed(V3, walk), mask.allowed(walk), "step " + step);
                }
                float[] logits = new float[V3.size()];
                for (int i = 0; i < logits.length; i++) {
                    logits[i] = (float) rng.nextGaussian() * 2;
                }
                int id = g.sample(logits);
                Delta d = g.accept(id);
                walk.step(V3.tokenBytes(id));
                content.append(d.content());
            }
            assertEquals(FinishReason.EOS, g.finishReason(), content.toString());
            String text = content.toString();
            assertTrue(choice ? List.of("positive", "negative", "neutral").contains(text) : date.matcher(text).matches(), text);
            assertFalse(text.isEmpty());
        }
    }
}
