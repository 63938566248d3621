package dev.epic.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

class ForwardWarmupTest {
    static Checkpoint checkpoint;

    @BeforeAll
    static void load() {
        checkpoint = Checkpoint.open(TestData.model("tiny-v3"));
    }

    @AfterAll
    static void close() {
        checkpoint.close();
    }

    /**
     * The serving shapes (a four-sequence prefill filling the budget, a continuation, decode at batch 4,
     * 2 and 1), in caches of its own: the model's answers after it are the same bits as before.
     */
    @Test
    void runsTheServingShapesAndLeavesTheModelAsItWas() {
        Transformer model = Transformer.load(checkpoint);
        Golden.Prompt p = Golden.of("tiny-v3").prompts().get(1);
        float[] before = model.forward(model.newCache(), p.tokens());
        ForwardWarmup.Result r = ForwardWarmup.run(model, 256);
        assertEquals(2 + 3 * 8, r.steps());
        assertEquals(4 * 64 + 64 + (4 + 2 + 1) * 8, r.tokens());
        assertArrayEquals(before, model.forward(model.newCache(), p.tokens()));
    }

    /** Within a short context and a small step budget: fewer positions, never past the context. */
    @Test
    void fitsAShortContextAndASmallBudget() throws Exception {
        ModelConfig small = TestData.withContext("tiny-v3", 8);
        Transformer model = new Transformer(small, checkpoint, LocalExperts.all(small, checkpoint));
        // Chunks of 1, two steps at each batch: the first sequence's 8 positions (a 9th would be refused).
        ForwardWarmup.Result r = ForwardWarmup.run(model, 3);
        assertEquals(2 + 3 * 2, r.steps());
        assertEquals(4 + 1 + (4 + 2 + 1) * 2, r.tokens());
    }
}
