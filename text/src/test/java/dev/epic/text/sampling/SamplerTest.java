package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.random.RandomGenerator;
import org.junit.jupiter.api.Test;

class SamplerTest {
    private static final int DRAWS = 10_000;

    // Probabilities on scattered ids; the rest of a 200-token vocab is ~0.
    private static Map<Integer, Double> crafted() {
        return Map.of(131, 0.40, 12, 0.30, 50, 0.15, 3, 0.10, 199, 0.05);
    }

    private static SamplingParams.Builder t1() {
        return SamplingParams.builder().temperature(1.0).topP(1.0);
    }

    @Test
    void temperatureZeroIsArgmaxWithLowestIdOnTies() {
        float[] l = {0.5f, 2f, -1f, 2f, 1.9f};
        SamplingParams greedy = SamplingParams.builder().temperature(0).build();
        Sampler s = new Sampler();
        for (int i = 0; i < 50; i++) {
            assertEquals(1, s.sample(l.clone(), l.length, greedy, null, greedy.newRandom()));
        }
        assertEquals(4, Sampler.argmax(new float[] {0, 0, 0, 0, 1}, 5));
    }

    @Test
    void samplesOnlyBelowN() {
        float[] l = new float[10];
        l[9] = 100; // a padded vocab row beyond the tokenizer must never be chosen
        SamplingParams g = SamplingParams.builder().temperature(0).build();
        assertEquals(0, new Sampler().sample(l.clone(), 9, g, null, g.newRandom()));
        SamplingParams p = t1().seed(1).build();
        RandomGenerator rng = p.newRandom();
        Sampler s = new Sampler();
        for (int i = 0; i < 200; i++) {
            int t = s.sample(l.clone(), 9, p, null, rng);
            assertFalse(t >= 9, "sampled padded id " + t);
        }
    }

    @Test
    void fullDistributionAtTemperatureOne() {
        float[] l = Dist.logits(200, crafted(), 1e-12);
        Dist.assertMatches(crafted(), Dist.histogram(l, t1().build(), DRAWS, 7), DRAWS);
    }

    @Test
    void temperatureSharpensAndFlattens() {
        Map<Integer, Double> p = Map.of(0, 0.6, 1, 0.3, 2, 0.1);
        float[] l = Dist.logits(3, p, 0);
        for (double t : new double[] {0.5, 2.0}) {
            Map<Integer, Double> expected = new HashMap<>();
            p.forEach((k, v) -> expected.put(k, Math.pow(v, 1 / t)));
            Dist.assertMatches(expected, Dist.histogram(l, t1().temperature(t).build(), DRAWS, 11), DRAWS);
        }
    }

    @Test
    void topPKeepsExactlyTheNucleus() {
        float[] l = Dist.logits(200, crafted(), 1e-12);
        // cumulative: 0.40, 0.70, 0.85, 0.95, 1.00 -> smallest prefix reaching top_p
        Map<Integer, Double> two = Map.of(131, 0.40, 12, 0.30);
        Map<Integer, Double> three = Map.of(131, 0.40, 12, 0.30, 50, 0.15);
        Dist.assertMatches(two, Dist.histogram(l, t1().topP(0.69).build(), DRAWS, 3), DRAWS);
        Dist.assertMatches(three, Dist.histogram(l, t1().topP(0.71).build(), DRAWS, 3), DRAWS);
        Dist.assertMatches(three, Dist.histogram(l, t1().topP(0.84).build(), DRAWS, 3), DRAWS);
        Dist.assertMatches(Map.of(131, 1.0), Dist.histogram(l, t1().topP(0.05).build(), 2000, 3), 2000);
    }

    @Test
    void topPOverARealSizedVocab() {
        // 129,280 logits: a dense head of 300 tokens over a long tail; nucleus found by selection must equal
        // the nucleus of a full sort.
        int n = 129_280;
        RandomGenerator g = SamplingParams.builder().seed(5).build().newRandom();
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = (float) (g.nextGaussian() * 0.5 - 12);
        }
        for (int k = 0; k < 300; k++) {
            l[g.nextInt(n)] = (float) (g.nextDouble() * 6);
        }
        double topP = 0.9;
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        float max = l[Sampler.argmax(l, n)];
        double[] w = new double[n];
        double z = 0;
        for (int i = 0; i < n; i++) {
            w[i] = (float) Math.exp(l[i] - max);
            z += w[i];
        }
        Arrays.sort(order, (a, b) -> w[a] != w[b] ? Double.compare(w[b], w[a]) : Integer.compare(a, b));
        java.util.Set<Integer> nucleus = new java.util.TreeSet<>();
        double acc = 0;
        for (int i = 0; i < n && acc < topP * z; i++) {
            acc += w[order[i]];
            nucleus.add(order[i]);
        }
        SamplingParams p = t1().topP(topP).seed(9).build();
        Sampler s = new Sampler();
        RandomGenerator rng = p.newRandom();
        java.util.Set<Integer> seen = new java.util.TreeSet<>();
        for (int i = 0; i < 300; i++) {
            seen.add(s.sample(l.clone(), n, p, null, rng));
        }
        org.junit.jupiter.api.Assertions.assertTrue(nucleus.containsAll(seen), "sampled outside the nucleus");
        org.junit.jupiter.api.Assertions.assertTrue(seen.size() > nucleus.size() / 4, "support suspiciously small");
    }

    @Test
    void topKKeepsTheKMostLikely() {
        float[] l = Dist.logits(200, crafted(), 1e-12);
        Dist.assertMatches(Map.of(131, 0.40, 12, 0.30, 50, 0.15),
                Dist.histogram(l, t1().topK(3).build(), DRAWS, 5), DRAWS);
        // ties at the boundary: lower id wins
        float[] tied = {1f, 3f, 2f, 2f, 2f};
        Dist.assertMatches(Map.of(1, Math.exp(3), 2, Math.exp(2)),
                Dist.histogram(tied, t1().topK(2).build(), DRAWS, 5), DRAWS);
        // -1 and 0 mean off; k >= vocab is a no-op
        Dist.assertMatches(crafted(), Dist.histogram(l, t1().topK(-1).build(), DRAWS, 5), DRAWS);
        Dist.assertMatches(Map.of(0, 0.6, 1, 0.4), Dist.histogram(Dist.logits(2, Map.of(0, 0.6, 1, 0.4), 0),
                t1().topK(50).build(), DRAWS, 5), DRAWS);
    }

    @Test
    void minPDropsTokensBelowFractionOfTheTop() {
        float[] l = Dist.logits(200, crafted(), 1e-12);
        // p_max = 0.40: min_p 0.3 keeps p >= 0.12 -> {0.40, 0.30, 0.15}
        Dist.assertMatches(Map.of(131, 0.40, 12, 0.30, 50, 0.15),
                Dist.histogram(l, t1().minP(0.3).build(), DRAWS, 13), DRAWS);
        // min_p 0.2 keeps p >= 0.08 -> adds 0.10
        Dist.assertMatches(Map.of(131, 0.40, 12, 0.30, 50, 0.15, 3, 0.10),
                Dist.histogram(l, t1().minP(0.2).build(), DRAWS, 13), DRAWS);
    }

    @Test
    void filtersCompose() {
        float[] l = Dist.logits(200, crafted(), 1e-12);
        // top-k 4 -> {.40,.30,.15,.10} (mass .95); top-p .8 of that -> needs .76 -> {.40,.30,.15}; min-p .5 -> p >= .2
        Dist.assertMatches(Map.of(131, 0.40, 12, 0.30),
                Dist.histogram(l, t1().topK(4).topP(0.8).minP(0.5).build(), DRAWS, 17), DRAWS);
    }

    @Test
    void sameSeedSameSequenceDifferentSeedDifferent() {
        float[] l = Dist.logits(200, crafted(), 1e-3);
        int[] a = draw(l, 42);
        int[] b = draw(l, 42);
        int[] c = draw(l, 43);
        assertArrayEquals(a, b);
        assertFalse(Arrays.equals(a, c));
    }

    /**
     * A preempted sequence recomputes its logits, equal to the decoded ones within 1e-5 but not bit for
     * bit: with the same random numbers it must draw the same tokens, unless a draw falls that close to
     * a boundary. Here 500 near-equal candidates (spread 1e-5) hold just over 95% of the mass, so top-p
     * and top-k keep exactly them under noise of 1e-6, while their partitioning orders them
     * differently; the draw must not depend on that order.
     */
    @Test
    void logitsAHairApartDrawTheSameTokens() {
        java.util.Random r = new java.util.Random(7);
        float[] l = new float[129_280];
        // The rest: 26.04 of total weight against the 500's 500 at T 0.6, so the 500 hold 95.05%.
        Arrays.fill(l, (float) (0.6 * Math.log(26.04 / (l.length - 500))));
        for (int placed = 0; placed < 500; ) {
            int id = r.nextInt(l.length);
            if (l[id] < 0) {
                l[id] = r.nextFloat() * 1e-5f;
                placed++;
            }
        }
        float[] noisy = new float[l.length];
        for (int i = 0; i < l.length; i++) {
            noisy[i] = l[i] + (r.nextFloat() - 0.5f) * 2e-6f;
        }
        for (SamplingParams.Builder b : List.of(SamplingParams.builder(), SamplingParams.builder().topP(1).topK(500))) {
            assertArrayEquals(draw(l, b, 42, 200), draw(noisy, b, 42, 200), b.build().toString());
        }
    }

    private static int[] draw(float[] l, SamplingParams.Builder b, long seed, int count) {
        SamplingParams p = b.seed(seed).build();
        RandomGenerator rng = p.newRandom();
        Sampler s = new Sampler();
        int[] out = new int[count];
        for (int i = 0; i < out.length; i++) {
            out[i] = s.sample(l.clone(), l.length, p, null, rng);
        }
        return out;
    }

    private static int[] draw(float[] l, long seed) {
        SamplingParams p = SamplingParams.builder().seed(seed).build(); // defaults: T 0.6, top_p 0.95
        RandomGenerator rng = p.newRandom();
        Sampler s = new Sampler();
        int[] out = new int[300];
        for (int i = 0; i < out.length; i++) {
            out[i] = s.sample(l.clone(), l.length, p, null, rng);
        }
        return out;
    }

    @Test
    void nanLogitsAreNeverChosenAndAllMaskedIsAnError() {
        float[] l = {Float.NaN, 1f, Float.NaN};
        SamplingParams p = t1().seed(1).build();
        assertEquals(1, new Sampler().sample(l.clone(), 3, p, null, p.newRandom()));
        float[] dead = {Float.NEGATIVE_INFINITY, Float.NaN};
        assertThrows(IllegalStateException.class, () -> new Sampler().sample(dead, 2, p, null, p.newRandom()));
    }
}
