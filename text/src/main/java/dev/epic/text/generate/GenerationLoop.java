package dev.epic.text.generate;

import java.util.function.BooleanSupplier;
import java.util.function.Consumer;

/** Drives one {@link Generation} against a {@link LogitsSource}: prefill, then sample/accept/next until done. */
public final class GenerationLoop {
    private GenerationLoop() {
    }

    /**
     * Runs to completion, handing every delta that has output to {@code onDelta} (streaming), and returns the
     * folded result. {@code cancelled} is checked before each step; when it turns true the generation ends
     * with {@link FinishReason#CANCELLED}.
     */
    public static GenerationResult run(LogitsSource model, int[] promptIds, Generation generation,
                                       Consumer<Delta> onDelta, BooleanSupplier cancelled) {
        GenerationResult.Accumulator all = new GenerationResult.Accumulator();
        float[] logits = model.prefill(promptIds);
        while (!generation.finished()) {
            Delta delta;
            if (cancelled.getAsBoolean()) {
                delta = generation.cancel();
            } else {
                int token = generation.sample(logits);
                delta = generation.accept(token);
                if (!generation.finished()) {
                    logits = model.next(token);
                }
            }
            all.add(delta);
            if (!delta.hasNoOutput()) {
                onDelta.accept(delta);
            }
        }
        return all.build();
    }

    /** Non-streaming convenience. */
    public static GenerationResult run(LogitsSource model, int[] promptIds, Generation generation) {
        return run(model, promptIds, generation, d -> { }, () -> false);
    }
}
