package dev.epic.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The search itself, over models given as tables of next-token probabilities. */
class BeamSearchTest {
    private static final int EOS = 0;
    private static final int A = 1;
    private static final int B = 2;
    private static final int C = 3;

    /** A model whose next-token probabilities depend on the last token only (p[last][next]). */
    private static BeamSearch.Model markov(double[][] p, List<Integer> calls) {
        return sequences -> {
            calls.add(sequences.size());
            List<float[]> out = new ArrayList<>();
            for (int[] s : sequences) {
                double[] row = p[s[s.length - 1]];
                float[] logits = new float[row.length];
                for (int t = 0; t < row.length; t++) {
                    logits[t] = (float) Math.log(row[t]);
                }
                out.add(logits);
            }
            return out;
        };
    }

    /**
     * The textbook case: greedy takes A (0.5) and then at best 0.34, 0.17 in all; two beams also keep
     * B (0.4) and find B C (0.36), the likelier answer.
     */
    @Test
    void twoBeamsFindWhatGreedyMisses() throws Exception {
        double[][] p = new double[4][];
        p[EOS] = new double[] {0.01, 0.01, 0.97, 0.01};
        p[A] = new double[] {0.01, 0.34, 0.32, 0.33};
        p[B] = new double[] {0.03, 0.03, 0.04, 0.90};
        p[C] = new double[] {0.0999, 0.5, 0.4, 0.0001};
        int[] prompt = {C, C, C}; // after C: A 0.5, B 0.4
        List<Integer> calls = new ArrayList<>();
        List<BeamSearch.Beam> greedy = BeamSearch.search(prompt, 1, 2, 1.0, t -> t == EOS, 100, markov(p, calls));
        assertArrayEquals(new int[] {A, A}, greedy.getFirst().tokens());
        List<BeamSearch.Beam> two = BeamSearch.search(prompt, 2, 2, 1.0, t -> t == EOS, 100, markov(p, calls));
        assertArrayEquals(new int[] {B, C}, two.getFirst().tokens());
        assertEquals(Math.log(0.4 * 0.9), two.getFirst().logprob(), 1e-6);
        assertEquals(2, two.size());
        assertTrue(two.get(0).score(3, 1.0) >= two.get(1).score(3, 1.0));
        assertEquals(List.of(1, 1, 1, 2), calls, "one sequence a step for one beam, two for two");
    }

    /**
     * A beam that draws EOS is complete and leaves the search with that token's log-probability; the
     * length penalty then decides between it and a longer one: at 1 (the mean per position) the short
     * EOS ending wins, at 0 (the plain sum) the long one does.
     */
    @Test
    void completedBeamsCompeteByTheirLengthPenalisedScore() throws Exception {
        double[][] p = new double[4][];
        p[EOS] = new double[] {0.25, 0.25, 0.25, 0.25};
        p[A] = new double[] {0.05, 0.05, 0.05, 0.85};
        p[B] = new double[] {0.05, 0.05, 0.05, 0.85};
        p[C] = new double[] {0.6, 0.2, 0.1, 0.1}; // after C, EOS is likeliest
        int[] prompt = {C};
        List<BeamSearch.Beam> mean = BeamSearch.search(prompt, 1, 3, 1.0, t -> t == EOS, 100, markov(p, new ArrayList<>()));
        assertTrue(mean.getFirst().completed());
        assertEquals(EOS, mean.getFirst().end());
        assertArrayEquals(new int[0], mean.getFirst().tokens(), "EOS at once: log 0.6 over 1 position");
        List<BeamSearch.Beam> sum = BeamSearch.search(prompt, 2, 3, 0.0, t -> t == EOS, 100, markov(p, new ArrayList<>()));
        assertEquals(Math.log(0.6), sum.getFirst().logprob(), 1e-6, "the plain sum prefers the shortest");
        List<BeamSearch.Beam> none = BeamSearch.search(prompt, 1, 3, 1.0, t -> false, 100, markov(p, new ArrayList<>()));
        assertEquals(3, none.getFirst().tokens().length, "without EOS (ignore_eos) every beam runs to max_tokens");
        assertTrue(!none.getFirst().completed());
    }

    /** One beam is greedy decoding: the argmax at every step, on random tables. */
    @Test
    void oneBeamIsGreedy() throws Exception {
        SplittableRandom r = new SplittableRandom(7);
        for (int round = 0; round < 20; round++) {
            int v = 12;
            double[][] p = new double[v][v];
            for (double[] row : p) {
                double sum = 0;
                for (int t = 0; t < v; t++) {
                    row[t] = r.nextDouble() + 1e-3;
                    sum += row[t];
                }
                for (int t = 0; t < v; t++) {
                    row[t] /= sum;
                }
            }
            int[] want = new int[6];
            int last = 5;
            for (int i = 0; i < want.length; i++) {
                int best = 0;
                for (int t = 1; t < v; t++) {
                    best = p[last][t] > p[last][best] ? t : best;
                }
                want[i] = last = best;
            }
            List<BeamSearch.Beam> one = BeamSearch.search(new int[] {5}, 1, 6, 1.0, t -> false, 100, markov(p, new ArrayList<>()));
            assertArrayEquals(want, one.getFirst().tokens(), "round " + round);
        }
    }

    /** Ids past the vocabulary (the lm_head's padding rows) are never a beam's, however likely. */
    @Test
    void paddingIdsAreNeverChosen() throws Exception {
        double[][] p = new double[4][];
        for (int t = 0; t < 4; t++) {
            p[t] = new double[] {0.01, 0.2, 0.09, 0.7}; // C (3) would win
        }
        List<BeamSearch.Beam> beams = BeamSearch.search(new int[] {A}, 2, 3, 1.0, t -> t == EOS, 3,
                markov(p, new ArrayList<>()));
        for (BeamSearch.Beam b : beams) {
            for (int t : b.tokens()) {
                assertTrue(t < 3, "token " + t);
            }
        }
        assertArrayEquals(new int[] {A, A, A}, beams.getFirst().tokens());
    }

    @Test
    void topTakesTheLikeliestLowerIdsFirstAmongEquals() {
        double[] lp = {-3, -1, -2, -1, -5, -0.5};
        assertArrayEquals(new int[] {5, 1, 3, 2}, BeamSearch.top(lp, 4));
        assertArrayEquals(new int[] {5, 1, 3, 2, 0, 4}, BeamSearch.top(lp, 9));
        double[] ls = BeamSearch.logSoftmax(new float[] {1, 2, 3});
        double z = Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3));
        assertArrayEquals(new double[] {1 - z, 2 - z, 3 - z}, ls, 1e-12);
    }
}
