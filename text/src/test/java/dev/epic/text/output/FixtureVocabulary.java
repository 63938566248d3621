package dev.epic.text.output;

import dev.epic.text.Vocabulary;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;

/**
 * Test fixture: a tiny vocabulary whose tokens are chosen byte strings, so tests control exactly where
 * token boundaries fall (inside a UTF-8 character, inside {@code </think>}, ...).
 */
public final class FixtureVocabulary implements Vocabulary {
    private final List<byte[]> bytes = new ArrayList<>();
    private final List<Boolean> special = new ArrayList<>();
    private final Map<String, Integer> pieces = new HashMap<>();
    private final Map<String, Integer> added = new HashMap<>();

    /**
     * DeepSeek-like layout: 0 = BOS and 1 = EOS (special), the tool-call markers as added non-special tokens,
     * and, when {@code thinkTokens}, {@code <think>} / {@code </think>} as single added tokens (R1 vocabulary);
     * otherwise they are only spellable from plain pieces (V3 vocabulary).
     */
    public static FixtureVocabulary deepSeekLike(boolean thinkTokens) {
        FixtureVocabulary v = new FixtureVocabulary();
        v.addSpecial("<｜begin▁of▁sentence｜>");
        v.addSpecial(DeepSeekMarkers.EOS);
        for (String m : List.of(DeepSeekMarkers.TOOL_CALLS_BEGIN, DeepSeekMarkers.TOOL_CALLS_END,
                DeepSeekMarkers.TOOL_CALL_BEGIN, DeepSeekMarkers.TOOL_CALL_END, DeepSeekMarkers.TOOL_SEP)) {
            v.addAdded(m, false);
        }
        if (thinkTokens) {
            v.addAdded(DeepSeekMarkers.THINK_OPEN, false);
            v.addAdded(DeepSeekMarkers.THINK_CLOSE, false);
        }
        return v;
    }

    /** The id of a plain token with this text, created on first use. */
    public int piece(String text) {
        Integer id = added.get(text);
        if (id != null) {
            return id;
        }
        return pieces.computeIfAbsent(text, t -> add(t.getBytes(StandardCharsets.UTF_8), false));
    }

    /** Ids for a sequence of pieces (added-token texts resolve to the added token). */
    public int[] ids(String... texts) {
        int[] out = new int[texts.length];
        for (int i = 0; i < texts.length; i++) {
            out[i] = piece(texts[i]);
        }
        return out;
    }

    /** A token with arbitrary (possibly partial UTF-8) bytes. */
    public int rawBytes(int... b) {
        byte[] a = new byte[b.length];
        for (int i = 0; i < b.length; i++) {
            a[i] = (byte) b[i];
        }
        return add(a, false);
    }

    public int addSpecial(String text) {
        return addAdded(text, true);
    }

    public int addAdded(String text, boolean isSpecial) {
        int id = add(text.getBytes(StandardCharsets.UTF_8), isSpecial);
        added.put(text, id);
        return id;
    }

    public int id(String addedText) {
        return added.get(addedText);
    }

    private int add(byte[] b, boolean isSpecial) {
        bytes.add(b);
        special.add(isSpecial);
        return bytes.size() - 1;
    }

    @Override
    public int size() {
        return bytes.size();
    }

    @Override
    public byte[] tokenBytes(int id) {
        return bytes.get(id).clone();
    }

    @Override
    public boolean isSpecial(int id) {
        return special.get(id);
    }

    @Override
    public OptionalInt addedTokenId(String text) {
        Integer id = added.get(text);
        return id == null ? OptionalInt.empty() : OptionalInt.of(id);
    }
}
