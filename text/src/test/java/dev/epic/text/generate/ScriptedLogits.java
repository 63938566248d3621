package dev.epic.text.generate;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;

/**
 * Test fixture model: at step i it returns logits whose argmax is script[i] (so greedy decoding replays the
 * script), checks that the loop feeds back exactly the token it was given, and pads the logits past the
 * tokenizer's vocabulary like DeepSeek's 129,280-row lm_head (the pad rows get the highest logit, which a
 * correct sampler must never pick).
 */
final class ScriptedLogits implements LogitsSource {
    private final int vocabSize;
    private final int rows;
    private final int[] script;
    private final int[] expectedPrompt;
    private final List<Integer> fed = new ArrayList<>();
    private int step;

    ScriptedLogits(int vocabSize, int[] expectedPrompt, int... script) {
        this(vocabSize, vocabSize + 8, expectedPrompt, script);
    }

    /** {@code rows}: logits length, e.g. 129,280 for DeepSeek-V3's lm_head over a 128,815-token vocabulary. */
    ScriptedLogits(int vocabSize, int rows, int[] expectedPrompt, int... script) {
        this.vocabSize = vocabSize;
        this.rows = rows;
        this.expectedPrompt = expectedPrompt;
        this.script = script;
    }

    @Override
    public float[] prefill(int[] promptIds) {
        assertArrayEquals(expectedPrompt, promptIds, "prefill got the prompt");
        return logitsFor(0);
    }

    @Override
    public float[] next(int token) {
        assertEquals(script[step], token, "loop fed back the token sampled at step " + step);
        fed.add(token);
        step++;
        return logitsFor(step);
    }

    List<Integer> fed() {
        return fed;
    }

    private float[] logitsFor(int i) {
        float[] l = new float[rows];
        for (int j = 0; j < vocabSize; j++) {
            l[j] = -5f + (j % 7) * 0.1f;
        }
        for (int j = vocabSize; j < l.length; j++) {
            l[j] = 50f; // rows with no token
        }
        if (i >= script.length) {
            throw new AssertionError("the loop asked for a step past the script (" + i + ")");
        }
        l[script[i]] = 10f;
        return l;
    }
}
