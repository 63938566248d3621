package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.generate.FinishReason;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationOptions;
import dev.epic.text.output.DeepSeekMarkers;
import dev.epic.text.sampling.InvalidSamplingException;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The token mask over DeepSeek-V3's real vocabulary, against stepping every token through the automaton. */
class JsonMaskTest {
    private static final Tokenizer V3 = Tokenizer.deepSeekV3();


    @Test
    void theMaskIsExactlyTheTokensThatCanFollow() {
        TokenMask<SchemaCursor> mask = JsonSchema.ANY_OBJECT.mask(V3);
        for (String prefix : List.of("", "{", "{\"na", "{\"name\"", "{\"name\": ", "{\"n\": 12", "{\"n\": [tr",
                "{\"s\": \"caf\\u00", "{\"a\": {\"b\": [1, {\"c\": null}", "{\"a\": 1}", "{\"t\": \"line\\")) {
            SchemaCursor at = new SchemaCursor(JsonSchema.ANY_OBJECT);
            assertTrue(at.step(prefix.getBytes(StandardCharsets.UTF_8)), prefix);
            BitSet expected = BruteForce.allowed(V3, at);
            assertEquals(expected, mask.allowed(at), prefix);
            assertFalse(expected.isEmpty(), prefix);
        }
        // Mid-\\u escape, inside a multi-byte character, at the whitespace cap, at the depth cap, after closed containers.
        List<byte[]> more = List.of("{\"s\": \"\\u0a".getBytes(StandardCharsets.UTF_8),
                new byte[] {'{', '"', 'k', '"', ':', '"', (byte) 0xe6, (byte) 0x97},
                ("{" + " ".repeat(SchemaPath.maxWhitespace(1))).getBytes(StandardCharsets.UTF_8),
                ("{\"d\":" + "[".repeat(SchemaPath.MAX_FRAMES - 2)).getBytes(StandardCharsets.UTF_8),
                "{\"a\": [{}, []], \"b\": {\"c\": {}}".getBytes(StandardCharsets.UTF_8));
        for (byte[] prefix : more) {
            SchemaCursor at = new SchemaCursor(JsonSchema.ANY_OBJECT);
            assertTrue(at.step(prefix), new String(prefix, StandardCharsets.UTF_8));
            assertEquals(BruteForce.allowed(V3, at), mask.allowed(at), new String(prefix, StandardCharsets.UTF_8));
        }
        // A random walk through the grammar, one allowed token at a time.
        Random rng = new Random(5);
        SchemaCursor walk = new SchemaCursor(JsonSchema.ANY_OBJECT);
        for (int step = 0; step < 25 && !walk.complete(); step++) {
            BitSet allowed = mask.allowed(walk);
            assertEquals(BruteForce.allowed(V3, walk), allowed, "step " + step);
            int pick = allowed.nextSetBit(rng.nextInt(V3.size()));
            pick = pick >= 0 ? pick : allowed.nextSetBit(0);
            assertTrue(walk.step(V3.tokenBytes(pick)));
        }
        SchemaCursor inString = new SchemaCursor(JsonSchema.ANY_OBJECT);
        inString.step("{\"k\": \"".getBytes(StandardCharsets.UTF_8));
        assertSame(mask.allowed(inString), mask.allowed(inString.copy()), "one state, one cached mask");
    }

    /**
     * Sampling from random logits under the constraint: every answer is a valid prefix of a JSON object,
     * and one that ends by end of sequence parses as one. Closing tokens get a boost so most answers close.
     */
    @Test
    void constrainedSamplingWritesJsonObjects() throws Exception {
        ObjectMapper strict = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
        int eos = V3.addedTokenId(DeepSeekMarkers.EOS).orElseThrow();
        float[] bias = new float[V3.size()];
        for (int id = 0; id < V3.size(); id++) {
            String t = new String(V3.tokenBytes(id), StandardCharsets.UTF_8);
            bias[id] = t.contains("}") || t.contains("\"") ? 6f : 0f;
        }
        bias[eos] = 10f;
        Random rng = new Random(3);
        int closed = 0;
        for (int run = 0; run < 12; run++) {
            Generation g = new Generation(V3, new int[] {0}, SamplingParams.builder().temperature(1f).seed(run)
                    .maxTokens(300).build(), GenerationOptions.defaults().withJsonSchema(JsonSchema.ANY_OBJECT).withParseToolCalls(false));
            StringBuilder text = new StringBuilder();
            while (!g.finished()) {
                float[] logits = new float[V3.size()];
                for (int i = 0; i < logits.length; i++) {
                    logits[i] = (float) rng.nextGaussian() * 2 + bias[i];
                }
                var d = g.accept(g.sample(logits));
                text.append(d.reasoning()).append(d.content());
            }
            assertTrue(new SchemaCursor(JsonSchema.ANY_OBJECT).step(text.toString().getBytes(StandardCharsets.UTF_8)), text::toString);
            if (g.finishReason() == FinishReason.EOS) {
                assertTrue(strict.readTree(text.toString()).isObject(), text::toString);
                closed++;
            }
        }
        assertTrue(closed >= 6, "most runs close their object: " + closed);
    }

    /** End of sequence and stop tokens are banned until the object is closed, then allowed. */
    @Test
    void endsWaitForTheClosedObject() {
        int eos = V3.addedTokenId(DeepSeekMarkers.EOS).orElseThrow();
        int stop = V3.encode("}")[0]; // an ordinary token as a stop token: banned early although JSON-valid
        AnswerConstraint<SchemaCursor> c = AnswerConstraint.json(V3, JsonSchema.ANY_OBJECT);
        c.accept(V3.encode("{")[0]);
        float[] logits = new float[V3.size()];
        c.restrict(logits, logits.length, java.util.Set.of(eos, stop));
        assertEquals(Float.NEGATIVE_INFINITY, logits[eos]);
        assertEquals(Float.NEGATIVE_INFINITY, logits[stop]);
        assertEquals(0f, logits[V3.encode("\"")[0]]);
        c.accept(V3.encode("}")[0]);
        assertTrue(c.complete());
        logits = new float[V3.size()];
        c.restrict(logits, logits.length, java.util.Set.of(eos, stop));
        assertEquals(0f, logits[eos]);
        assertEquals(0f, logits[stop]);
        assertEquals(Float.NEGATIVE_INFINITY, logits[V3.encode("x")[0]]);
    }

    @Test
    void anAnswerThatCannotEndIsRefused() {
        for (SamplingParams p : new SamplingParams[] {SamplingParams.builder().ignoreEos(true).build(),
                SamplingParams.builder().minTokens(3).maxTokens(8).build()}) {
            try {
                new Generation(V3, new int[] {0}, p, GenerationOptions.defaults().withJsonSchema(JsonSchema.ANY_OBJECT));
                throw new AssertionError("accepted " + p);
            } catch (InvalidSamplingException e) {
                assertEquals("response_format", e.field());
            }
        }
    }
}
