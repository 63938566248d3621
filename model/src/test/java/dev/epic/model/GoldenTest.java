package dev.epic.model;

import static dev.epic.kernels.VectorOps.argmax;
import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Routing;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** The engine against DeepSeek's reference outputs (testdata/GOLDEN.md) for both test checkpoints. */
class GoldenTest {
    static final float LOGIT_TOL = Golden.LOGIT_TOL;
    static final float WEIGHT_TOL = 1e-5f;
    private static final org.slf4j.Logger log = org.slf4j.LoggerFactory.getLogger(GoldenTest.class);

    private static final Map<String, Checkpoint> CHECKPOINTS = new ConcurrentHashMap<>();
    private static final Map<String, Transformer> MODELS = new ConcurrentHashMap<>();

    static Transformer model(String name) {
        return MODELS.computeIfAbsent(name, n -> Transformer.load(
                CHECKPOINTS.computeIfAbsent(n, m -> Checkpoint.open(TestData.model(m)))));
    }

    @AfterAll
    static void close() {
        CHECKPOINTS.values().forEach(Checkpoint::close);
        CHECKPOINTS.clear();
        MODELS.clear();
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void prefillAndCachedGreedyStepsMatchReference(String name) {
        Transformer model = model(name);
        List<Golden.Prompt> prompts = Golden.of(name).prompts();
        float worst = 0f;
        for (int p = 0; p < prompts.size(); p++) {
            Golden.Prompt g = prompts.get(p);
            KvCache cache = model.newCache();
            float[] logits = model.forward(cache, g.tokens());
            float diff = maxAbsDiff(g.prefillLogits(), logits);
            assertTrue(diff <= LOGIT_TOL, name + " prompt " + p + " prefill max abs diff " + diff);
            worst = Math.max(worst, diff);
            int[] tokens = new int[g.greedyTokens().length];
            for (int k = 0; k < tokens.length; k++) {
                tokens[k] = argmax(logits);
                assertEquals(g.tokens().length + k, cache.length());
                logits = model.forward(cache, tokens[k]);
                diff = maxAbsDiff(g.stepLogits()[k], logits);
                assertTrue(diff <= LOGIT_TOL, name + " prompt " + p + " step " + k + " max abs diff " + diff);
                worst = Math.max(worst, diff);
            }
            assertArrayEquals(g.greedyTokens(), tokens, name + " prompt " + p + " greedy tokens");
        }
        log.info("{}: max abs logit diff vs reference over all prompts and steps: {}", name, worst);
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void greedyWithoutCacheMatchesGreedyWithCache(String name) {
        Transformer model = model(name);
        List<Golden.Prompt> prompts = Golden.of(name).prompts();
        for (int p = 0; p < prompts.size(); p++) {
            Golden.Prompt g = prompts.get(p);
            int[] seq = g.tokens();
            // the 64- and 300-token prompts are recomputed for 3 steps only, to keep the suite fast
            int steps = seq.length > 50 ? 3 : g.greedyTokens().length;
            int[] tokens = new int[steps];
            for (int k = 0; k < tokens.length; k++) {
                float[] logits = model.forward(model.newCache(), seq); // full recompute, fresh cache
                tokens[k] = argmax(logits);
                seq = Arrays.copyOf(seq, seq.length + 1);
                seq[seq.length - 1] = tokens[k];
            }
            assertArrayEquals(Arrays.copyOf(g.greedyTokensNoCache(), steps), tokens, name + " prompt " + p);
            assertArrayEquals(Arrays.copyOf(g.greedyTokens(), steps), tokens, name + " prompt " + p);
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"tiny-v3", "tiny-v3-fp8"})
    void traceMatchesReference(String name) {
        Transformer model = model(name);
        JsonNode trace = Golden.of(name).trace();
        int[] tokens = Golden.of(name).prompts().get(trace.get("prompt_index").asInt()).tokens();
        int hidden = model.config().hiddenSize();
        List<float[]> blocks = new ArrayList<>();
        List<Integer> routedLayers = new ArrayList<>();
        List<Routing> routings = new ArrayList<>();
        float[][] embeddings = new float[1][];
        model.step(List.of(SequenceChunk.next(model.newCache(), tokens)), new ForwardObserver() {
            @Override
            public void embeddings(float[] h, int rows) {
                embeddings[0] = Arrays.copyOf(h, rows * hidden);
            }

            @Override
            public void blockOutput(int layer, float[] h, int rows) {
                blocks.add(Arrays.copyOf(h, rows * hidden));
            }

            @Override
            public void routing(int layer, Routing routing) {
                routedLayers.add(layer);
                routings.add(routing);
            }
        });

        assertTrue(maxAbsDiff(flatten(trace.get("embeddings")), embeddings[0]) <= 1e-6f, "embeddings");
        JsonNode goldenBlocks = trace.get("block_outputs");
        assertEquals(goldenBlocks.size(), blocks.size());
        for (int l = 0; l < blocks.size(); l++) {
            float diff = maxAbsDiff(flatten(goldenBlocks.get(l)), blocks.get(l));
            assertTrue(diff <= LOGIT_TOL, name + " block " + l + " max abs diff " + diff);
            log.info("{}: block {} max abs diff {}", name, l, diff);
        }
        JsonNode goldenRouting = trace.get("routing");
        assertEquals(goldenRouting.size(), routings.size());
        for (int i = 0; i < routings.size(); i++) {
            JsonNode gr = goldenRouting.get(i);
            assertEquals(gr.get("layer").asInt(), routedLayers.get(i));
            Routing r = routings.get(i);
            for (int row = 0; row < tokens.length; row++) {
                int[] expectedIds = Golden.ints(gr.get("experts").get(row));
                float[] expectedW = Golden.floats(gr.get("weights").get(row));
                int[] ids = Arrays.copyOfRange(r.experts(), row * r.k(), (row + 1) * r.k());
                float[] w = Arrays.copyOfRange(r.weights(), row * r.k(), (row + 1) * r.k());
                assertArrayEquals(expectedIds, ids, name + " layer " + gr.get("layer") + " row " + row);
                float diff = maxAbsDiff(expectedW, w);
                assertTrue(diff <= WEIGHT_TOL, name + " routing weights diff " + diff);
            }
        }
    }

    static float[] flatten(JsonNode rows) {
        List<Float> all = new ArrayList<>();
        for (JsonNode row : rows) {
            for (JsonNode v : row) {
                all.add((float) v.asDouble());
            }
        }
        float[] out = new float[all.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = all.get(i);
        }
        return out;
    }
}
