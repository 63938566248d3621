package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.TreeMap;
import java.util.random.RandomGenerator;

/** Test helper: build logits from probabilities, sample many times, compare frequencies. */
final class Dist {
    private Dist() {
    }

    /** logits = ln(p); ids not listed get ln(tiny). */
    static float[] logits(int n, Map<Integer, Double> probs, double tiny) {
        float[] l = new float[n];
        for (int i = 0; i < n; i++) {
            l[i] = (float) Math.log(probs.getOrDefault(i, tiny));
        }
        return l;
    }

    static Map<Integer, Integer> histogram(float[] logits, SamplingParams p, int draws, long seed) {
        Sampler s = new Sampler();
        RandomGenerator rng = SamplingParams.builder().seed(seed).build().newRandom();
        Map<Integer, Integer> counts = new TreeMap<>();
        for (int i = 0; i < draws; i++) {
            int t = s.sample(logits.clone(), logits.length, p, null, rng);
            counts.merge(t, 1, Integer::sum);
        }
        return counts;
    }

    /** Support equals expected keys and each frequency is within 5 binomial sigma of expected (normalized). */
    static void assertMatches(Map<Integer, Double> expected, Map<Integer, Integer> counts, int draws) {
        assertEquals(new TreeMap<>(expected).keySet(), counts.keySet(), "sampled support");
        double z = expected.values().stream().mapToDouble(Double::doubleValue).sum();
        for (var e : expected.entrySet()) {
            double q = e.getValue() / z;
            double mean = draws * q;
            double sigma = Math.sqrt(draws * q * (1 - q));
            int c = counts.get(e.getKey());
            assertTrue(Math.abs(c - mean) <= 5 * sigma + 1,
                    "token " + e.getKey() + ": " + c + " draws, expected " + mean + " +- " + 5 * sigma);
        }
    }
}
