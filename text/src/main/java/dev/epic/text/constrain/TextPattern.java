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
public final class TextPattern implements TextLanguage {
    static final int MAX_CHOICES = 1024;
    /** Characters of all choices together: their automaton has at most one state per character. */
    static final int MAX_CHOICE_CHARS = 1 << 17;
    private static final Map<List<String>, TextPattern> COMPILED = Collections.synchronizedMap(
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<List<String>, TextPattern> e) {
                    return size() > 16;
                }
            });

    private final StringRule rule;
    private final Map<Vocabulary, TokenMask<TextCursor>> masks = Collections.synchronizedMap(new WeakHashMap<>());

    private TextPattern(Automaton text, int maxStates, String what) {
        rule = new StringRule(text, 0, Integer.MAX_VALUE, maxStates, what);
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
        return cached(List.of("regex", regex), () -> new TextPattern(EcmaPattern.compileWhole(regex), StringRule.MAX_STATES,
                "regex"));
    }

    /** Text that is exactly one of {@code choices}. */
    public static TextPattern choice(List<String> choices) {
        if (choices.isEmpty() || choices.size() > MAX_CHOICES) {
            throw new IllegalArgumentException("choice needs 1 to " + MAX_CHOICES + " choices, got " + choices.size());
        }
        long chars = choices.stream().mapToLong(String::length).sum();
        if (chars > MAX_CHOICE_CHARS) {
            throw new IllegalArgumentException("choice: the choices hold " + chars + " characters, more than "
                    + MAX_CHOICE_CHARS);
        }
        List<String> key = new java.util.ArrayList<>(choices);
        key.addFirst("choice");
        // Already deterministic and minimal (a trie with shared suffixes), so one state per character at most.
        return cached(List.copyOf(key), () -> new TextPattern(
                BasicAutomata.makeStringUnion(choices.toArray(CharSequence[]::new)), (int) chars + 2, "choice"));
    }

    /** Compiled once per key; compiling runs outside the cache's lock, so a slow one holds up no other request. */
    private static TextPattern cached(List<String> key, java.util.function.Supplier<TextPattern> compile) {
        TextPattern known = COMPILED.get(key);
        if (known != null) {
            return known;
        }
        TextPattern p = compile.get();
        TextPattern raced = COMPILED.putIfAbsent(key, p);
        return raced != null ? raced : p;
    }

    @Override
    public TokenConstraint constrain(Vocabulary vocab) {
        return AnswerConstraint.text(vocab, this);
    }

    TokenMask<TextCursor> mask(Vocabulary vocab) {
        return masks.computeIfAbsent(vocab, v -> new TokenMask<>(v, 512));
    }

    TextCursor start() {
        return new TextCursor(rule);
    }
}
