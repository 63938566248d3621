package dev.epic.model;

import static dev.epic.kernels.VectorOps.argmax;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import dev.epic.model.checkpoint.Checkpoint;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * A sequence's logits do not depend on how its prompt is chunked or what shares its steps: the same
 * bits prefilled whole, in chunks of 7 or 64, or chunked beside other sequences that prefill and
 * decode in the same steps. This is what makes a request's tokens independent of the server's load
 * (chunked prefill shares a step budget among prompts, so a prompt's chunks follow the traffic).
 */
class ChunkInvarianceTest {
    private static final int STEPS = 4;

    @ParameterizedTest
    @CsvSource({"tiny-v3, FP32", "tiny-v3-fp8, FP32", "tiny-v3, BF16"})
    void logitsAreTheSameBitsHoweverThePromptIsChunkedAndBatched(String name, KvCacheDtype dtype) {
        try (Checkpoint ck = Checkpoint.open(TestData.model(name))) {
            Transformer model = Transformer.load(ck).kvCacheDtype(dtype);
            List<Golden.Prompt> prompts = Golden.of(name).prompts();
            int[] prompt = prompts.get(4).tokens(); // 300 tokens
            List<float[]> whole = alone(model, prompt, prompt.length);
            for (int chunk : new int[] {7, 64}) {
                List<float[]> chunked = alone(model, prompt, chunk);
                for (int k = 0; k <= STEPS; k++) {
                    assertArrayEquals(whole.get(k), chunked.get(k), name + " chunks of " + chunk + ", output " + k);
                }
            }
            List<float[]> shared = besideOthers(model, prompt, prompts.get(1).tokens(), prompts.get(2).tokens());
            for (int k = 0; k <= STEPS; k++) {
                assertArrayEquals(whole.get(k), shared.get(k), name + " beside other sequences, output " + k);
            }
        }
    }

    /** Under the cost-based choice of attention form, chunking does show in the last bits: why absorbed is the default. */
    @Test
    void theExpandedFormForLongChunksWouldNotBeInvariant() {
        System.setProperty("epic.mla.form", "AUTO");
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3"))) {
            Transformer model = Transformer.load(ck);
            int[] prompt = Golden.of("tiny-v3").prompts().get(4).tokens();
            assertFalse(Arrays.equals(alone(model, prompt, prompt.length).getFirst(), alone(model, prompt, 7).getFirst()));
        } finally {
            System.clearProperty("epic.mla.form");
        }
    }

    /** The prompt in chunks of {@code chunk}, then STEPS greedy steps: the logits after the prompt and after each step. */
    private static List<float[]> alone(Transformer model, int[] prompt, int chunk) {
        KvCache cache = model.newCache();
        float[] last = null;
        for (int s = 0; s < prompt.length; s += chunk) {
            last = model.step(List.of(SequenceChunk.next(cache, Arrays.copyOfRange(prompt, s, Math.min(prompt.length, s + chunk)))))
                    .getFirst();
        }
        List<float[]> out = new ArrayList<>(List.of(last));
        for (int k = 0; k < STEPS; k++) {
            out.add(model.forward(cache, argmax(out.getLast())));
        }
        return out;
    }

    /**
     * The prompt in chunks of 50 while sequence B (already prefilled) decodes in every step and
     * sequence C prefills in chunks of 33 beside it; then its greedy steps, still beside B's.
     */
    private static List<float[]> besideOthers(Transformer model, int[] prompt, int[] b, int[] c) {
        KvCache mine = model.newCache();
        KvCache cb = model.newCache();
        KvCache cc = model.newCache();
        int nextB = argmax(model.forward(cb, b));
        float[] last = null;
        int sc = 0;
        for (int s = 0; s < prompt.length; s += 50) {
            List<SequenceChunk> step = new ArrayList<>();
            step.add(SequenceChunk.next(cb, nextB));
            step.add(SequenceChunk.next(mine, Arrays.copyOfRange(prompt, s, Math.min(prompt.length, s + 50))));
            if (sc < c.length) {
                step.add(SequenceChunk.next(cc, Arrays.copyOfRange(c, sc, Math.min(c.length, sc + 33))));
                sc += 33;
            }
            List<float[]> logits = model.step(step);
            nextB = argmax(logits.get(0));
            last = logits.get(1);
        }
        List<float[]> out = new ArrayList<>(List.of(last));
        for (int k = 0; k < STEPS; k++) {
            List<float[]> logits = model.step(List.of(SequenceChunk.next(mine, argmax(out.getLast())),
                    SequenceChunk.next(cb, nextB)));
            nextB = argmax(logits.get(1));
            out.add(logits.get(0));
        }
        return out;
    }
}
