package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.generate.Delta;
import dev.epic.text.generate.FinishReason;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationOptions;
import dev.epic.text.output.DeepSeekMarkers;
import dev.epic.text.output.ReasoningMode;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** A constrained answer after a thinking block: the block is opened, left free, closed, then the answer constrained. */
class ThinkingFirstTest {
    private static final Tokenizer V3 = Tokenizer.deepSeekV3();
    private static final ObjectMapper JSON = new ObjectMapper();

    private static String text(int id) {
        return new String(V3.tokenBytes(id), StandardCharsets.UTF_8);
    }

    private static List<Integer> allowed(TokenConstraint c) {
        float[] logits = new float[V3.size()];
        c.mask(logits, logits.length);
        List<Integer> ok = new ArrayList<>();
        for (int id = 0; id < logits.length; id++) {
            if (logits[id] == 0f) {
                ok.add(id);
            }
        }
        return ok;
    }

    @Test
    void theOutputMustOpenTheBlock() {
        ThinkingFirst c = new ThinkingFirst(V3, AnswerConstraint.json(V3, JsonSchema.ANY_OBJECT), false);
        List<Integer> ok = allowed(c);
        assertFalse(ok.isEmpty());
        for (int id : ok) {
            String t = text(id);
            assertTrue(t.startsWith(DeepSeekMarkers.THINK_OPEN) || DeepSeekMarkers.THINK_OPEN.startsWith(t), t);
        }
        assertTrue(ok.contains(V3.encode("<")[0]));
        assertFalse(ok.contains(V3.encode("{")[0]), "no answer before the thought");
        assertThrows(IllegalStateException.class, () -> c.accept(V3.encode("{")[0]));
    }

    @Test
    void theMarkerClosesTheBlockOnlyAtATokensEnd() {
        ThinkingFirst c = new ThinkingFirst(V3, AnswerConstraint.json(V3, JsonSchema.ANY_OBJECT), true);
        for (int id : V3.encode("I think a</think")) {
            assertTrue(allowed(c).contains(id), text(id));
            c.accept(id);
        }
        assertFalse(c.answering());
        List<Integer> ok = allowed(c);
        int close = V3.encode(">")[0];
        assertTrue(ok.contains(close));
        int longer = -1; // a token that would close the block and write on
        for (int id = 0; id < V3.size() && longer < 0; id++) {
            if (text(id).startsWith(">") && text(id).length() > 1) {
                longer = id;
            }
        }
        assertTrue(longer >= 0);
        assertFalse(ok.contains(longer), "'" + text(longer) + "' writes past the block's end");
        int plain = V3.encode("x")[0];
        assertTrue(ok.contains(plain), "the thought goes on");
        for (int id = 0; id < V3.size(); id++) {
            assertTrue(!V3.isSpecial(id) || !ok.contains(id), "special token " + id + ": the decoder may skip it");
        }
        c.accept(close);
        assertTrue(c.answering());
        assertEquals(allowed(AnswerConstraint.json(V3, JsonSchema.ANY_OBJECT)), allowed(c), "then the answer's mask");
        assertFalse(c.complete());
    }

    /**
     * Generations from random logits that are steered to close the thought after a few steps: the
     * reasoning is split off, the content is a JSON object, and end of sequence only follows it.
     */
    @Test
    void generationsThinkThenAnswer() throws Exception {
        int[] close = V3.encode(DeepSeekMarkers.THINK_CLOSE);
        Set<Integer> eos = DeepSeekMarkers.ids(V3, List.of(DeepSeekMarkers.EOS));
        float[] bias = new float[V3.size()];
        for (int id = 0; id < V3.size(); id++) {
            bias[id] = text(id).contains("\"") || text(id).contains("}") ? 6f : 0f;
        }
        eos.forEach(id -> bias[id] = 8f);
        Random rng = new Random(11);
        int finished = 0;
        for (int run = 0; run < 8; run++) {
            Generation g = new Generation(V3, new int[] {0}, SamplingParams.builder().temperature(1f).seed(run)
                    .maxTokens(300).build(), GenerationOptions.defaults().withJsonSchema(JsonSchema.ANY_OBJECT)
                    .withThinkFirst(ReasoningMode.DETECT));
            StringBuilder reasoning = new StringBuilder(), content = new StringBuilder(), raw = new StringBuilder();
            int step = 0;
            while (!g.finished()) {
                float[] logits = new float[V3.size()];
                for (int i = 0; i < logits.length; i++) {
                    logits[i] = (float) rng.nextGaussian() * 2 + (step < 10 ? 0 : bias[i]);
                }
                if (step >= 10 && step - 10 < close.length) {
                    logits[close[step - 10]] = 100f; // steer the thought to its end
                }
                int id = g.sample(logits);
                Delta d = g.accept(id);
                if (!eos.contains(id)) {
                    raw.append(text(id));
                }
                reasoning.append(d.reasoning());
                content.append(d.content());
                step++;
            }
            assertTrue(raw.toString().startsWith(DeepSeekMarkers.THINK_OPEN), raw.toString());
            assertFalse(reasoning.toString().isBlank(), raw.toString());
            assertFalse(content.toString().contains(DeepSeekMarkers.THINK_CLOSE));
            if (g.finishReason() == FinishReason.LENGTH) {
                continue;
            }
            finished++;
            assertEquals(FinishReason.EOS, g.finishReason());
            assertTrue(JSON.readTree(content.toString()).isObject(), content.toString());
        }
        assertTrue(finished >= 4, "most runs close their answer: " + finished);
    }
}
