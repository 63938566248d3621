package dev.epic.text.tokenizer;

import java.util.Arrays;

/**
 * BPE merges as an open-addressing hash map from a token-id pair to (rank, merged id), packed in longs so the
 * 127k-entry table costs two primitive arrays and a lookup is a few array reads.
 */
final class MergeTable {
    static final long MISSING = -1L;

    private long[] keys;
    private long[] values;
    private int mask;
    private int size;

    MergeTable(int expected) {
        allocate(Integer.highestOneBit(Math.max(4, expected * 2 - 1)) << 1);
    }

    private void allocate(int capacity) {
        keys = new long[capacity];
        values = new long[capacity];
        Arrays.fill(keys, -1L);
        mask = capacity - 1;
    }

    /** Doubles the table, keeping the load factor at most 1/2. */
    private void grow() {
        long[] oldKeys = keys;
        long[] oldValues = values;
        allocate(keys.length * 2);
        for (int i = 0; i < oldKeys.length; i++) {
            if (oldKeys[i] != -1L) {
                int j = slot(oldKeys[i]);
                while (keys[j] != -1L) {
                    j = (j + 1) & mask;
                }
                keys[j] = oldKeys[i];
                values[j] = oldValues[i];
            }
        }
    }

    private static long key(int left, int right) {
        return ((long) left << 32) | (right & 0xFFFFFFFFL);
    }

    private int slot(long key) {
        long h = key * 0x9E3779B97F4A7C15L;
        return (int) (h ^ (h >>> 29)) & mask;
    }

    /** Later puts of the same pair overwrite earlier ones, as in Hugging Face's merge map. */
    void put(int left, int right, int rank, int mergedId) {
        long k = key(left, right);
        int i = slot(k);
        while (keys[i] != -1L && keys[i] != k) {
            i = (i + 1) & mask;
        }
        if (keys[i] == -1L && (size + 1) * 2 > keys.length) {
            grow();
            put(left, right, rank, mergedId);
            return;
        }
        if (keys[i] == -1L) {
            size++;
        }
        keys[i] = k;
        values[i] = ((long) rank << 32) | (mergedId & 0xFFFFFFFFL);
    }

    /** (rank << 32 | mergedId) for the pair, or {@link #MISSING}. */
    long get(int left, int right) {
        long k = key(left, right);
        int i = slot(k);
        long cur;
        while ((cur = keys[i]) != -1L) {
            if (cur == k) {
                return values[i];
            }
            i = (i + 1) & mask;
        }
        return MISSING;
    }

    int size() {
        return size;
    }

    static int rank(long entry) {
        return (int) (entry >>> 32);
    }

    static int mergedId(long entry) {
        return (int) entry;
    }
}
