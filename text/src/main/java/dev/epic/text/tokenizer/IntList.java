package dev.epic.text.tokenizer;

import java.util.Arrays;

/** Growable int array for token ids (avoids boxing on the encode path). */
final class IntList {
    private int[] a = new int[64];
    private int size;

    void add(int v) {
        if (size == a.length) {
            a = Arrays.copyOf(a, size * 2);
        }
        a[size++] = v;
    }

    void addAll(int[] vs) {
        if (size + vs.length > a.length) {
            a = Arrays.copyOf(a, Math.max(a.length * 2, size + vs.length));
        }
        System.arraycopy(vs, 0, a, size, vs.length);
        size += vs.length;
    }

    int size() {
        return size;
    }

    int get(int i) {
        return a[i];
    }

    void clear() {
        size = 0;
    }

    int[] toArray() {
        return Arrays.copyOf(a, size);
    }
}
