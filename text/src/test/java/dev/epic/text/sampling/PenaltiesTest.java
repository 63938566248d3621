package dev.epic.text.sampling;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class PenaltiesTest {

    @Test
    void presenceAndFrequencyHitOnlyGeneratedTokensByCount() {
        TokenHistory h = TokenHistory.ofPrompt(new int[] {0, 1}); // prompt tokens: no OpenAI penalty
        h.addGenerated(2);
        h.addGenerated(3);
        h.addGenerated(3);
        h.addGenerated(3);
        float[] l = {1f, 1f, 1f, 1f, 1f};
        SamplingParams p = SamplingParams.builder().presencePenalty(0.5).frequencyPenalty(0.25).build();
        h.applyPenalties(l, l.length, p);
        // id 2: 1 - 1*0.25 - 0.5 ; id 3: 1 - 3*0.25 - 0.5
        assertArrayEquals(new float[] {1f, 1f, 0.25f, -0.25f, 1f}, l, 1e-6f);
        assertEquals(3, h.generatedCount(3));
        assertEquals(0, h.generatedCount(4));
    }

    @Test
    void repetitionDividesPositiveAndMultipliesNegativeOverPromptAndOutput() {
        TokenHistory h = TokenHistory.ofPrompt(new int[] {0, 1});
        h.addGenerated(2);
        float[] l = {2f, -2f, 3f, 2f, -2f};
        SamplingParams p = SamplingParams.builder().repetitionPenalty(2.0).build();
        h.applyPenalties(l, l.length, p);
        assertArrayEquals(new float[] {1f, -4f, 1.5f, 2f, -2f}, l, 1e-6f);
    }

    @Test
    void negativePenaltiesEncourage() {
        TokenHistory h = new TokenHistory();
        h.addGenerated(1);
        float[] l = {0f, 0f};
        h.applyPenalties(l, 2, SamplingParams.builder().presencePenalty(-1).frequencyPenalty(-0.5).build());
        assertArrayEquals(new float[] {0f, 1.5f}, l, 1e-6f);
    }

    @Test
    void manyDistinctTokensCounted() {
        TokenHistory h = new TokenHistory();
        for (int rep = 0; rep < 3; rep++) {
            for (int id = 0; id < 5000; id += 7) {
                h.addGenerated(id);
            }
        }
        for (int id = 0; id < 5000; id++) {
            assertEquals(id % 7 == 0 ? 3 : 0, h.generatedCount(id), "id " + id);
        }
    }

    @Test
    void greedyPicksAfterPenalties() {
        TokenHistory h = new TokenHistory();
        h.addGenerated(0);
        float[] l = {5f, 4.5f, 1f};
        SamplingParams p = SamplingParams.builder().temperature(0).frequencyPenalty(1).build();
        assertEquals(1, new Sampler().sample(l, 3, p, h, p.newRandom()));
    }
}
