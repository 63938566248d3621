package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.TreeSet;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** Selection must agree with a full sort (key desc, id asc) on random inputs, ties included. */
class TopSelectTest {

    @Test
    void selectTopMatchesSort() {
        SplittableRandom r = new SplittableRandom(1);
        for (int trial = 0; trial < 300; trial++) {
            int m = 1 + r.nextInt(400);
            float[] key = randomKeys(r, m);
            int k = 1 + r.nextInt(m);
            int[] idx = IntStream.range(0, m).toArray();
            TopSelect.selectTop(idx, m, k, key);
            assertEquals(sorted(key).subList(0, k).stream().collect(java.util.stream.Collectors.toCollection(TreeSet::new)),
                    set(idx, k), "trial " + trial);
        }
    }

    @Test
    void heapTopKMatchesSort() {
        SplittableRandom r = new SplittableRandom(3);
        for (int trial = 0; trial < 300; trial++) {
            int n = 1 + r.nextInt(3000);
            float[] key = randomKeys(r, n);
            int k = 1 + r.nextInt(Math.min(n, 100));
            int[] out = new int[k];
            TopSelect.topKByHeap(key, n, k, out);
            assertEquals(new TreeSet<>(sorted(key).subList(0, k)), set(out, k), "trial " + trial);
        }
    }

    @Test
    void nucleusMatchesSortedPrefix() {
        nucleusMatchesSortedPrefix(TopSelect::nucleus, 1000, 2);
    }

    /** The bucketed path, on its own from one candidate up, and through nucleus past its threshold. */
    @Test
    void bucketedNucleusMatchesSortedPrefix() {
        nucleusMatchesSortedPrefix(TopSelect::nucleusByBuckets, 1000, 4);
        nucleusMatchesSortedPrefix(TopSelect::nucleus, 3 * TopSelect.BUCKETED_FROM, 5);
    }

    /** Keys spread over many binades (a flat distribution's exp weights): buckets several values wide. */
    @Test
    void bucketedNucleusOverWideKeys() {
        SplittableRandom r = new SplittableRandom(6);
        for (int trial = 0; trial < 40; trial++) {
            int m = 1 + r.nextInt(20_000);
            float[] key = new float[m];
            for (int i = 0; i < m; i++) {
                key[i] = r.nextInt(8) == 0 ? key[r.nextInt(i + 1)] : (float) Math.exp(-12 * r.nextDouble()); // ties too
            }
            checkNucleus(TopSelect::nucleusByBuckets, key, r.nextDouble(), "trial " + trial);
        }
    }

    interface Nucleus {
        int select(int[] idx, int m, float[] key, double target);
    }

    private static void nucleusMatchesSortedPrefix(Nucleus nucleus, int maxM, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (int trial = 0; trial < 300; trial++) {
            int m = 1 + r.nextInt(maxM);
            checkNucleus(nucleus, randomKeys(r, m), r.nextDouble(), "trial " + trial);
        }
    }

    /** nucleus(target = fraction of the total) against the prefix of a full sort. */
    private static void checkNucleus(Nucleus nucleus, float[] key, double fraction, String what) {
        int m = key.length;
        double total = 0;
        for (float v : key) {
            total += v;
        }
        double target = fraction * total;
        var order = sorted(key);
        double acc = 0;
        int c = 0;
        while (c < m && acc < target) {
            acc += key[order.get(c++)];
        }
        c = Math.max(c, 1);
        int[] idx = IntStream.range(0, m).toArray();
        int got = nucleus.select(idx, m, key, target);
        assertEquals(c, got, what + " size");
        assertEquals(new TreeSet<>(order.subList(0, c)), set(idx, got), what + " members");
    }

    private static float[] randomKeys(SplittableRandom r, int m) {
        float[] key = new float[m];
        for (int i = 0; i < m; i++) {
            key[i] = r.nextInt(4) == 0 ? 0.25f * r.nextInt(4) : (float) r.nextDouble(); // many ties
        }
        return key;
    }

    private static java.util.List<Integer> sorted(float[] key) {
        Integer[] o = IntStream.range(0, key.length).boxed().toArray(Integer[]::new);
        Arrays.sort(o, Comparator.<Integer>comparingDouble(i -> -key[i]).thenComparingInt(i -> i));
        return Arrays.asList(o);
    }

    private static TreeSet<Integer> set(int[] idx, int k) {
        TreeSet<Integer> s = new TreeSet<>();
        for (int i = 0; i < k; i++) {
            s.add(idx[i]);
        }
        return s;
    }
}
