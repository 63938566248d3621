package dev.epic.text.sampling;

import java.util.Arrays;
import java.util.BitSet;

/**
 * The tokens one sequence has seen, as the penalties need them: the set of prompt + generated ids
 * (repetition penalty) and how often each id was generated (presence / frequency penalty).
 * Sparse in the generated ids, so penalties cost O(distinct tokens), not O(vocab).
 */
public final class TokenHistory {
    private static final int EMPTY = -1;

    private final BitSet seen = new BitSet();
    // Open-addressing map generated id -> count.
    private int[] keys = new int[64];
    private int[] counts = new int[64];
    private int distinct;

    public TokenHistory() {
        Arrays.fill(keys, EMPTY);
    }

    public static TokenHistory ofPrompt(int[] promptIds) {
        TokenHistory h = new TokenHistory();
        for (int id : promptIds) {
            h.seen.set(id);
        }
        return h;
    }

    public void addGenerated(int id) {
        seen.set(id);
        int slot = find(id);
        if (keys[slot] == EMPTY) {
            keys[slot] = id;
            counts[slot] = 1;
            if (++distinct * 2 > keys.length) {
                grow();
            }
        } else {
            counts[slot]++;
        }
    }

    /** Times {@code id} was generated. */
    public int generatedCount(int id) {
        int slot = find(id);
        return keys[slot] == EMPTY ? 0 : counts[slot];
    }

    /** True if {@code id} occurred in the prompt or was generated. */
    public boolean seen(int id) {
        return seen.get(id);
    }

    /**
     * Applies penalties in place to logits[0..n):
     * repetition (HF/CTRL): l = l > 0 ? l / r : l * r for every id in prompt or output;
     * then OpenAI: l -= count * frequency + (count > 0 ? presence : 0) for every generated id.
     */
    public void applyPenalties(float[] logits, int n, SamplingParams p) {
        double r = p.repetitionPenalty();
        if (r != 1) {
            for (int id = seen.nextSetBit(0); id >= 0 && id < n; id = seen.nextSetBit(id + 1)) {
                float l = logits[id];
                logits[id] = (float) (l > 0 ? l / r : l * r);
            }
        }
        double freq = p.frequencyPenalty();
        double pres = p.presencePenalty();
        if (freq != 0 || pres != 0) {
            for (int slot = 0; slot < keys.length; slot++) {
                int id = keys[slot];
                if (id != EMPTY && id < n) {
                    logits[id] = (float) (logits[id] - counts[slot] * freq - pres);
                }
            }
        }
    }

    private int find(int id) {
        int mask = keys.length - 1;
        int slot = (id * 0x9E3779B9) >>> 7 & mask;
        while (keys[slot] != EMPTY && keys[slot] != id) {
            slot = (slot + 1) & mask;
        }
        return slot;
    }

    private void grow() {
        int[] oldKeys = keys;
        int[] oldCounts = counts;
        keys = new int[oldKeys.length * 2];
        counts = new int[oldKeys.length * 2];
        Arrays.fill(keys, EMPTY);
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldKeys[i] != EMPTY) {
                int slot = find(oldKeys[i]);
                keys[slot] = oldKeys[i];
                counts[slot] = oldCounts[i];
            }
        }
    }
}
