package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Comparator;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class LogprobsTest {
    @Test
    void matchesLogSoftmaxAndSortsTheTopTokens() {
        SplittableRandom r = new SplittableRandom(3);
        float[] logits = new float[5000];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) (r.nextGaussian() * 4);
        }
        double z = 0;
        for (float l : logits) {
            z += Math.exp(l);
        }
        Logprobs lp = Logprobs.of(logits, logits.length, 1234, 7);
        assertEquals(1234, lp.token());
        assertEquals(logits[1234] - Math.log(z), lp.logprob(), 1e-5);
        int[] expected = IntStream.range(0, logits.length).boxed()
                .sorted(Comparator.comparingDouble((Integer i) -> -logits[i])).limit(7).mapToInt(i -> i).toArray();
        assertArrayEquals(expected, lp.topTokens());
        for (int j = 0; j < 7; j++) {
            assertEquals(logits[expected[j]] - Math.log(z), lp.topLogprobs()[j], 1e-5);
        }
    }

    @Test
    void tiesKeepTheLowerIdFirstAndOnlyTheFirstNCount() {
        float[] logits = {1, 3, 3, -1, 3, 2};
        Logprobs lp = Logprobs.of(logits, 5, 0, 2); // the last logit is past n
        assertArrayEquals(new int[] {1, 2}, lp.topTokens());
        double z = Math.exp(1) + 3 * Math.exp(3) + Math.exp(-1);
        assertEquals((float) (1 - Math.log(z)), lp.logprob(), 1e-6);
        assertEquals(0, Logprobs.of(logits, 5, 0, 0).topTokens().length);
        assertArrayEquals(new int[] {1, 2, 4, 0, 3}, Logprobs.of(logits, 5, 3, 20).topTokens());
    }

    /** The chosen token's rank counts the tokens at least as likely, itself included, as vLLM's does. */
    @Test
    void theRankCountsTheTokensAtLeastAsLikely() {
        float[] logits = {0.5f, 2f, -1f, 2f, 1f, 0.5f};
        assertEquals(2, Logprobs.of(logits, 6, 1, 0).rank()); // tied with 3
        assertEquals(2, Logprobs.of(logits, 6, 3, 2).rank());
        assertEquals(3, Logprobs.of(logits, 6, 4, 1).rank());
        assertEquals(5, Logprobs.of(logits, 6, 0, 1).rank()); // tied with 5
        assertEquals(6, Logprobs.of(logits, 6, 2, 1).rank());
        assertEquals(1, Logprobs.of(new float[] {9f, 0f, 1f}, 1, 2, 1, 1).rank(), "within its row");
    }

    @Test
    void aRowOfSeveralGivesWhatItGivesAlone() {
        float[] rows = {9, 9, 9, 1, 3, 3, -1, 2};
        float[] row = {1, 3, 3, -1};
        Logprobs alone = Logprobs.of(row, 4, 3, 2);
        Logprobs inRows = Logprobs.of(rows, 3, 4, 3, 2);
        assertEquals(alone.logprob(), inRows.logprob());
        assertArrayEquals(alone.topTokens(), inRows.topTokens());
        assertArrayEquals(new int[] {1, 2}, inRows.topTokens());
    }

    @Test
    void survivesLargeLogits() {
        float[] logits = {1000f, 999f, -1000f};
        Logprobs lp = Logprobs.of(logits, 3, 1, 1);
        assertEquals(-1 - Math.log1p(Math.exp(-1)), lp.logprob(), 1e-5);
        assertEquals(-Math.log1p(Math.exp(-1)), lp.topLogprobs()[0], 1e-5);
    }
}
