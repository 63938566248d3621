package dev.epic.coordinator.experts;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The logits part of a checkpoint's golden.json (testdata/GOLDEN.md). */
record GoldenLogits(List<Prompt> prompts) {
    record Prompt(int[] tokens, float[] prefillLogits, int[] greedyTokens, float[][] stepLogits) {}

    static Path model(String name) {
        return Path.of(System.getProperty("epic.testdata", "testdata")).resolve(name);
    }

    static GoldenLogits of(String name) {
        try {
            JsonNode root = new ObjectMapper().readTree(model(name).resolve("golden.json").toFile());
            List<Prompt> prompts = new ArrayList<>();
            for (JsonNode p : root.get("prompts")) {
                JsonNode steps = p.get("step_logits");
                float[][] s = new float[steps.size()][];
                for (int i = 0; i < s.length; i++) {
                    s[i] = floats(steps.get(i));
                }
                prompts.add(new Prompt(ints(p.get("tokens")), floats(p.get("prefill_logits")),
                        ints(p.get("greedy_tokens")), s));
            }
            return new GoldenLogits(prompts);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static int[] ints(JsonNode a) {
        int[] out = new int[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = a.get(i).asInt();
        }
        return out;
    }

    private static float[] floats(JsonNode a) {
        float[] out = new float[a.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = (float) a.get(i).asDouble();
        }
        return out;
    }

    static float maxAbsDiff(float[] a, float[] b) {
        if (a.length != b.length) {
            throw new AssertionError("length " + a.length + " vs " + b.length);
        }
        float m = 0f;
        for (int i = 0; i < a.length; i++) {
            float d = Math.abs(a[i] - b[i]);
            m = Float.isNaN(d) ? Float.POSITIVE_INFINITY : Math.max(m, d);
        }
        return m;
    }
}
