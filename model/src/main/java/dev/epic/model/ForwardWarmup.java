package dev.epic.model;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A serving process's forward passes before its first request, so that the JIT has compiled the
 * kernels by then (SGLang's server warm-up; vLLM's dummy runs). Cold, the Vector API kernels run
 * interpreted: the first 512-token request of a fresh bench-v3 cluster took 18 s against 3 s for the
 * next. The passes take the shapes serving takes ({@link #plan}): a prefill step of several sequences
 * filling the step budget, a chunk continuing a cached prompt, then decode steps at batch 4, 2 and 1.
 * They run on the model directly, on random tokens, in caches of their own that are released after,
 * so no request, prefix block or scheduler statistic sees them; routed experts and attention workers
 * see them as traffic like any other.
 */
public final class ForwardWarmup {
    /** Sequences the {@link #plan} feeds, numbered from 0. */
    public static final int SEQUENCES = 4;
    private static final int[] DECODE_BATCHES = {4, 2, 1};
    private static final int DECODE_STEPS = 8;

    private ForwardWarmup() {}

    /** {@code length} new positions of sequence {@code sequence} (0 to 3) in one step. */
    public record Part(int sequence, int length) {}

    /** Steps run, the positions they fed, and their wall time. */
    public record Result(int steps, int tokens, long millis) {}

    /**
     * The steps, each a list of parts: the four sequences' first chunks in one step within
     * {@code budget} positions, a second chunk of the first, then 8 decode steps at each of batch 4, 2
     * and 1. The first sequence, in every step, stays within {@code context} positions.
     */
    public static List<List<Part>> plan(int context, int budget) {
        int decodeSteps = Math.clamp((context - 2) / DECODE_BATCHES.length, 0, DECODE_STEPS);
        int chunk = Math.clamp((context - DECODE_BATCHES.length * decodeSteps) / 2, 1, Math.max(1, budget / SEQUENCES));
        List<List<Part>> steps = new ArrayList<>();
        List<Part> prefill = new ArrayList<>();
        for (int i = 0; i < SEQUENCES; i++) {
            prefill.add(new Part(i, chunk));
        }
        steps.add(prefill);
        steps.add(List.of(new Part(0, chunk)));
        for (int batch : DECODE_BATCHES) {
            for (int k = 0; k < decodeSteps; k++) {
                List<Part> decode = new ArrayList<>();
                for (int i = 0; i < batch; i++) {
                    decode.add(new Part(i, 1));
                }
                steps.add(decode);
            }
        }
        return steps;
    }

    /** Runs the {@link #plan} on {@code model}, its prefill steps at most {@code budget} positions each. */
    public static Result run(Transformer model, int budget) {
        long t0 = System.nanoTime();
        int vocab = model.config().vocabSize();
        SplittableRandom random = new SplittableRandom(7);
        List<KvCache> caches = new ArrayList<>();
        List<List<Part>> plan = plan(model.config().maxPositionEmbeddings(), budget);
        int tokens = 0;
        try {
            for (int i = 0; i < SEQUENCES; i++) {
                caches.add(model.newCache());
            }
            for (List<Part> step : plan) {
                List<SequenceChunk> chunks = new ArrayList<>(step.size());
                for (Part p : step) {
                    chunks.add(SequenceChunk.next(caches.get(p.sequence()), random.ints(p.length(), 2, vocab).toArray()));
                    tokens += p.length();
                }
                model.step(chunks);
            }
        } finally {
            caches.forEach(KvCache::release);
        }
        return new Result(plan.size(), tokens, (System.nanoTime() - t0) / 1_000_000);
    }
}
