package dev.epic.text.tokenizer;

import dev.epic.text.TextException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.concurrent.ConcurrentHashMap;

/**
 * Byte-level BPE over one pre-tokenized piece: start from one symbol per byte, then repeatedly merge the adjacent
 * pair with the lowest merge rank (leftmost among equals). A binary heap of candidate merges plus a doubly linked
 * symbol list makes this O(n log n), so a 5,000-letter word or 256 spaces cost no more than their length.
 */
final class BpeModel {
    private static final int CACHE_MAX_ENTRIES = 100_000;
    private static final int CACHE_MAX_PIECE_CHARS = 256;

    /** Vocabulary id of each byte's byte-level char, -1 if the vocabulary lacks it. */
    private final int[] byteIds;
    private final MergeTable merges;
    private final ConcurrentHashMap<String, int[]> cache = new ConcurrentHashMap<>();

    BpeModel(int[] byteIds, MergeTable merges) {
        this.byteIds = byteIds;
        this.merges = merges;
    }

    /** Appends the ids of {@code text[start, end)} to {@code out}. */
    void encodePiece(String text, int start, int end, IntList out) {
        String piece = text.substring(start, end);
        if (piece.length() <= CACHE_MAX_PIECE_CHARS) {
            int[] cached = cache.get(piece);
            if (cached == null) {
                cached = merge(piece.getBytes(StandardCharsets.UTF_8));
                if (cache.size() >= CACHE_MAX_ENTRIES) {
                    cache.clear();
                }
                cache.put(piece, cached);
            }
            out.addAll(cached);
        } else {
            out.addAll(merge(piece.getBytes(StandardCharsets.UTF_8)));
        }
    }

    int[] merge(byte[] bytes) {
        int n = bytes.length;
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            int id = byteIds[bytes[i] & 0xFF];
            if (id < 0) {
                throw new TextException(String.format("byte 0x%02X has no token in this vocabulary", bytes[i] & 0xFF));
            }
            ids[i] = id;
        }
        if (n < 2) {
            return ids;
        }
        int[] prev = new int[n];
        int[] next = new int[n];
        for (int i = 0; i < n; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        LongHeap heap = new LongHeap(n);
        for (int i = 0; i + 1 < n; i++) {
            long m = merges.get(ids[i], ids[i + 1]);
            if (m != MergeTable.MISSING) {
                heap.push(candidate(m, i));
            }
        }
        int alive = n;
        while (!heap.isEmpty()) {
            long top = heap.pop();
            int rank = (int) (top >>> 32);
            int pos = (int) top;
            int right = next[pos];
            if (ids[pos] < 0 || right < 0) {
                continue; // stale: symbol merged away, or nothing to its right any more
            }
            long m = merges.get(ids[pos], ids[right]);
            if (m == MergeTable.MISSING || MergeTable.rank(m) != rank) {
                continue; // stale: the pair at pos changed since this candidate was queued
            }
            ids[pos] = MergeTable.mergedId(m);
            ids[right] = -1;
            int after = next[right];
            next[pos] = after;
            if (after >= 0) {
                prev[after] = pos;
            }
            alive--;
            int before = prev[pos];
            if (before >= 0) {
                long mb = merges.get(ids[before], ids[pos]);
                if (mb != MergeTable.MISSING) {
                    heap.push(candidate(mb, before));
                }
            }
            if (after >= 0) {
                long ma = merges.get(ids[pos], ids[after]);
                if (ma != MergeTable.MISSING) {
                    heap.push(candidate(ma, pos));
                }
            }
        }
        int[] out = new int[alive];
        int k = 0;
        for (int i = 0; i >= 0; i = next[i]) {
            out[k++] = ids[i];
        }
        return out;
    }

    /** Heap order = rank, then position: the lowest-ranked, leftmost merge comes out first. */
    private static long candidate(long mergeEntry, int pos) {
        return ((long) MergeTable.rank(mergeEntry) << 32) | pos;
    }

    /** Min-heap of longs. */
    private static final class LongHeap {
        private long[] a;
        private int size;

        LongHeap(int capacity) {
            a = new long[Math.max(4, capacity)];
        }

        boolean isEmpty() {
            return size == 0;
        }

        void push(long v) {
            if (size == a.length) {
                a = Arrays.copyOf(a, size * 2);
            }
            int i = size++;
            while (i > 0) {
                int p = (i - 1) >>> 1;
                if (a[p] <= v) {
                    break;
                }
                a[i] = a[p];
                i = p;
            }
            a[i] = v;
        }

        long pop() {
            long top = a[0];
            long last = a[--size];
            int i = 0;
            int half = size >>> 1;
            while (i < half) {
                int c = 2 * i + 1;
                if (c + 1 < size && a[c + 1] < a[c]) {
                    c++;
                }
                if (last <= a[c]) {
                    break;
                }
                a[i] = a[c];
                i = c;
            }
            a[i] = last;
            return top;
        }
    }
}
