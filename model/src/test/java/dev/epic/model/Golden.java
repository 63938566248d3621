package dev.epic.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/** golden.json of a test checkpoint (see testdata/GOLDEN.md). */
public record Golden(List<Prompt> prompts, JsonNode trace) {
    /**
     * The fp32 path's tolerance against the reference logits (max abs difference), in process and
     * through a cluster alike (fp32 on the wire, sums combined exactly): measured 1.4e-5 to 1.6e-5.
     */
    public static final float LOGIT_TOL = 3e-5f;

    public record Prompt(int[] tokens, float[] prefillLogits, int[] greedyTokens, float[][] stepLogits,
            int[] greedyTokensNoCache) {}

    private static final Map<String, Golden> CACHE = new ConcurrentHashMap<>();

    public static Golden of(String model) {
        return CACHE.computeIfAbsent(model, Golden::read);
    }

    private static Golden read(String model) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(TestData.model(model).resolve("golden.json").toFile());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        List<Prompt> prompts = new ArrayList<>();
        for (JsonNode p : root.get("prompts")) {
            JsonNode steps = p.get("step_logits");
            float[][] stepLogits = new float[steps.size()][];
            for (int i = 0; i < steps.size(); i++) {
                stepLogits[i] = floats(steps.get(i));
            }
            prompts.add(new Prompt(ints(p.get("tokens")), floats(p.get("prefill_logits")), ints(p.get("greedy_tokens")),
                    stepLogits, ints(p.get("greedy_tokens_no_cache"))));
        }
        return new Golden(prompts, root.get("trace"));
    }

    public static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }

    public static float[] floats(JsonNode a) {
        float[] out = new float[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) a.get(i).asDouble();
        }
        return out;
    }

    public static float maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("length " + a.length + " vs " + b.length);
        }
        float m = 0f;
        for (int i = 0; i < a.length; i++) {
            m = Math.max(m, Math.abs(a[i] - b[i]));
        }
        return Float.isNaN(m) ? Float.POSITIVE_INFINITY : m;
    }
}
