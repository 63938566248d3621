package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import dk.brics.automaton.Automaton;
import dk.brics.automaton.BasicAutomata;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * The whole output held to a regular language: vLLM's {@code guided_regex} (the text matches the
 * pattern as a whole) and {@code guided_choice} (the text is one of the choices, exactly). Compiled
 * patterns, and with them their token masks, are shared by requests that send the same one.
 */
public final class TextPattern {
    static final int MAX_CHOICES = 1024;
    private static final Map<List<String>, TextPattern> COMPILED = Collections.synchronizedMap(
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<List<String>, TextPattern> e) {
                    return size() > 16;
                }
            });

    private final StringRule rule;
    private final Map<Vocabulary, TokenMask<TextCursor>> masks = Collections.synchronizedMap(new WeakHashMap<>());

    private TextPattern(Automaton text, String what) {
        rule = new StringRule(text, 0, Integer.MAX_VALUE, what);
        if (!rule.live(rule.start(), 0)) {
            throw new IllegalArgumentException(what + " matches no text");
        }
    }

    /**
     * Text that {@code regex} (ECMA-262 syntax, as JSON Schema's pattern) matches as a whole.
     *
     * @throws IllegalArgumentException naming what in the pattern is not supported
     */
    public static TextPattern regex(String regex) {
        return COMPILED.computeIfAbsent(List.of("regex", regex), k -> new TextPattern(EcmaPattern.compileWhole(regex), "regex"));
    }

    /** Text that is exactly one of {@code choices}. */
    public static TextPattern choice(List<String> choices) {
        if (choices.isEmpty() || choices.size() > MAX_CHOICES) {
            throw new IllegalArgumentException("choice needs 1 to " + MAX_CHOICES + " choices, got " + choices.size());
        }
        List<String> key = new java.util.ArrayList<>(choices);
        key.addFirst("choice");
        return COMPILED.computeIfAbsent(List.copyOf(key), k -> {
            Automaton any = BasicAutomata.makeEmpty();
            for (String c : choices) {
                any = any.union(BasicAutomata.makeString(c));
            }
            return new TextPattern(any, "choice");
        });
    }

    TokenMask<TextCursor> mask(Vocabulary vocab) {
        return masks.computeIfAbsent(vocab, v -> new TokenMask<>(v, 512));
    }

    TextCursor start() {
        return new TextCursor(rule);
    }
}
