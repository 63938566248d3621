package dev.epic.model;

import static dev.epic.kernels.VectorOps.argmax;
import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Mla;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * Both attention forms, forced for every sequence (the automatic choice picks by cost, so on these tiny
 * models prefill may never go expanded), against the golden prefill and cached greedy-step logits.
 */
class MlaFormsTest {
    @ParameterizedTest
    @CsvSource({"tiny-v3, EXPANDED", "tiny-v3, ABSORBED", "tiny-v3-fp8, EXPANDED", "tiny-v3-fp8, ABSORBED"})
    void eachFormMatchesReference(String name, Mla.Form form) {
        System.setProperty("epic.mla.form", form.name());
        try (Checkpoint ck = Checkpoint.open(TestData.model(name))) {
            Transformer model = Transformer.load(ck);
            List<Golden.Prompt> prompts = Golden.of(name).prompts();
            for (int p = 0; p < prompts.size(); p++) {
                Golden.Prompt g = prompts.get(p);
                KvCache cache = model.newCache();
                float[] logits = model.forward(cache, g.tokens());
                float diff = maxAbsDiff(g.prefillLogits(), logits);
                assertTrue(diff <= GoldenTest.LOGIT_TOL, name + " " + form + " prompt " + p + " prefill diff " + diff);
                for (int k = 0; k < 4; k++) { // a few cached steps: decode rows take the same form
                    logits = model.forward(cache, argmax(logits));
                    diff = maxAbsDiff(g.stepLogits()[k], logits);
                    assertTrue(diff <= GoldenTest.LOGIT_TOL, name + " " + form + " prompt " + p + " step " + k
                            + " diff " + diff);
                }
            }
        } finally {
            System.clearProperty("epic.mla.form");
        }
    }

    /** The property does switch the form: their arithmetic differs, so the logits differ in the last bits. */
    @Test
    void thePropertySelectsTheForm() {
        assertFalse(Arrays.equals(prefill(Mla.Form.EXPANDED), prefill(Mla.Form.ABSORBED)));
    }

    private static float[] prefill(Mla.Form form) {
        System.setProperty("epic.mla.form", form.name());
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3"))) {
            Transformer model = Transformer.load(ck);
            return model.forward(model.newCache(), Golden.of("tiny-v3").prompts().get(1).tokens());
        } finally {
            System.clearProperty("epic.mla.form");
        }
    }
}
