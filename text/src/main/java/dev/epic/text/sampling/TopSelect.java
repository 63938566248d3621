package dev.epic.text.sampling;

/**
 * Partial selection over token indices by a key (higher first, lower id first on ties: a total order,
 * so the selected set is deterministic). Expected O(n) quickselect instead of a full sort of the vocab.
 */
final class TopSelect {
    private static final int SMALL = 24;

    private TopSelect() {
    }

    /**
     * Writes the ids of the k greatest key[0..n) into out[0..k) (no particular order) with one sequential scan
     * and a k-sized min-heap; most tokens cost one comparison against the heap root. For small k.
     */
    static void topKByHeap(float[] key, int n, int k, int[] out) {
        for (int i = 0; i < k; i++) {
            out[i] = i;
            siftUp(out, i, key);
        }
        for (int i = k; i < n; i++) {
            // Ids arrive in ascending order, so a tie with the root (lower id) never displaces it.
            if (key[i] > key[out[0]]) {
                out[0] = i;
                siftDown(out, k, key);
            }
        }
    }

    /** Heap order: the root is the candidate that would be dropped first (smallest key, then highest id). */
    private static boolean worse(int a, int b, float[] key) {
        return key[a] < key[b] || (key[a] == key[b] && a > b);
    }

    private static void siftUp(int[] h, int i, float[] key) {
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (!worse(h[i], h[parent], key)) {
                return;
            }
            swap(h, i, parent);
            i = parent;
        }
    }

    private static void siftDown(int[] h, int size, float[] key) {
        int i = 0;
        while (true) {
            int l = 2 * i + 1;
            if (l >= size) {
                return;
            }
            int c = l + 1 < size && worse(h[l + 1], h[l], key) ? l + 1 : l;
            if (!worse(h[c], h[i], key)) {
                return;
            }
            swap(h, i, c);
            i = c;
        }
    }

    /** Rearranges idx[0..m) so that idx[0..k) hold the k greatest keys (in no particular order). */
    static void selectTop(int[] idx, int m, int k, float[] key) {
        int lo = 0;
        int hi = m;
        while (hi - lo > 1) {
            int p = partition(idx, lo, hi, key);
            if (p < k) {
                lo = p + 1;
            } else if (p > k) {
                hi = p;
            } else {
                return;
            }
        }
    }

    /** Candidates from which {@link #nucleus} first narrows by buckets of key values. */
    static final int BUCKETED_FROM = 4096;
    private static final int BUCKETS = 4096;

    /**
     * Returns c, the size of the smallest prefix of highest-key tokens (keys >= 0) whose key mass
     * reaches {@code target}, and puts exactly that nucleus in idx[0..c) (the rest of idx[0..m) is
     * then unspecified). Always >= 1.
     */
    static int nucleus(int[] idx, int m, float[] key, double target) {
        return m >= BUCKETED_FROM ? nucleusByBuckets(idx, m, key, target) : nucleusBySelection(idx, m, key, target);
    }

    /**
     * {@link #nucleus} for many candidates (a flat distribution keeps most of the vocabulary, where
     * quickselect took 2 ms): one pass sorts the keys into buckets of their bit patterns (ordered as
     * the values, for keys >= 0), a walk down the buckets finds the one where the mass reaches the
     * target, and only that bucket's few candidates are selected exactly.
     */
    static int nucleusByBuckets(int[] idx, int m, float[] key, double target) {
        int lo = Integer.MAX_VALUE;
        int hi = 0;
        for (int j = 0; j < m; j++) {
            int b = bits(key[idx[j]]);
            lo = Math.min(lo, b);
            hi = Math.max(hi, b);
        }
        int shift = 0;
        while ((hi - lo) >>> shift >= BUCKETS) {
            shift++;
        }
        double[] mass = new double[BUCKETS];
        int[] count = new int[BUCKETS];
        for (int j = 0; j < m; j++) {
            float k = key[idx[j]];
            int b = (bits(k) - lo) >>> shift;
            mass[b] += k;
            count[b]++;
        }
        double above = 0; // mass of the buckets above the edge: all in the nucleus, and < target
        int edge = (hi - lo) >>> shift;
        while (edge >= 0 && above + mass[edge] < target) {
            above += mass[edge--];
        }
        if (edge < 0) {
            return m; // rounding: every candidate
        }
        int[] edgeIds = new int[count[edge]];
        int a = 0;
        int e = 0;
        for (int j = 0; j < m; j++) { // a <= j: idx[j] is read before anything is written there
            int id = idx[j];
            int b = (bits(key[id]) - lo) >>> shift;
            if (b > edge) {
                idx[a++] = id;
            } else if (b == edge) {
                edgeIds[e++] = id;
            }
        }
        int c = nucleusBySelection(edgeIds, e, key, target - above);
        System.arraycopy(edgeIds, 0, idx, a, e);
        return a + c;
    }

    /** A key's bit pattern, ordered as the key for keys >= 0 (-0 taken as 0). */
    private static int bits(float k) {
        return Float.floatToRawIntBits(k + 0f);
    }

    /** {@link #nucleus} by quickselect; idx[0..m) stays a permutation of what it was. */
    static int nucleusBySelection(int[] idx, int m, float[] key, double target) {
        int lo = 0;
        int hi = m;
        double acc = 0; // mass of idx[0..lo), all in the nucleus; invariant acc < target
        while (hi - lo > SMALL) {
            int p = partition(idx, lo, hi, key);
            double upper = 0;
            for (int j = lo; j < p; j++) {
                upper += key[idx[j]];
            }
            if (acc + upper >= target) {
                hi = p;
            } else {
                acc += upper + key[idx[p]];
                if (acc >= target) {
                    return p + 1;
                }
                lo = p + 1;
            }
        }
        insertionSort(idx, lo, hi, key);
        for (int j = lo; j < hi; j++) {
            acc += key[idx[j]];
            if (acc >= target) {
                return j + 1;
            }
        }
        return Math.max(hi, 1); // rounding: the whole remaining range
    }

    static boolean before(int a, int b, float[] key) {
        float ka = key[a];
        float kb = key[b];
        return ka > kb || (ka == kb && a < b);
    }

    /** Lomuto partition of idx[lo..hi) around a median-of-three pivot; returns the pivot's final slot. */
    private static int partition(int[] idx, int lo, int hi, float[] key) {
        int last = hi - 1;
        int mid = (lo + hi) >>> 1;
        // median of idx[lo], idx[mid], idx[last] moved to idx[last]
        if (before(idx[mid], idx[lo], key)) {
            swap(idx, mid, lo);
        }
        if (before(idx[last], idx[lo], key)) {
            swap(idx, last, lo);
        }
        if (before(idx[mid], idx[last], key)) {
            swap(idx, mid, last);
        }
        int pivot = idx[last];
        int store = lo;
        for (int i = lo; i < last; i++) {
            if (before(idx[i], pivot, key)) {
                swap(idx, i, store++);
            }
        }
        swap(idx, store, last);
        return store;
    }

    private static void insertionSort(int[] idx, int lo, int hi, float[] key) {
        for (int i = lo + 1; i < hi; i++) {
            int v = idx[i];
            int j = i - 1;
            while (j >= lo && before(v, idx[j], key)) {
                idx[j + 1] = idx[j];
                j--;
            }
            idx[j + 1] = v;
        }
    }

    private static void swap(int[] a, int i, int j) {
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}
