package dev.epic.model;

import dev.epic.kernels.VectorOps;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * A serving process's forward passes before its first request, so that the JIT has compiled the
 * kernels by then (SGLang's server warm-up; vLLM's dummy runs). Cold, the Vector API kernels run
 * interpreted: the first 512-token request of a fresh bench-v3 cluster took 18 s against 3 s for the
 * next. The passes take the shapes serving takes: a prefill step of several sequences filling the
 * step budget, a chunk continuing a cached prompt, then decode steps at batch 4, 2 and 1. They run
 * on the model directly, in caches of their own that are released after, so no request, prefix
 * block or scheduler statistic sees them; routed experts see them as traffic like any other.
 */
public final class ForwardWarmup {
    private static final int SEQUENCES = 4;
    private static final int[] DECODE_BATCHES = {4, 2, 1};
    private static final int DECODE_STEPS = 8;

    private ForwardWarmup() {}

    /** Steps run and their wall time. */
    public record Result(int steps, int tokens, long millis) {}

    /** Runs the passes on {@code model}, its prefill steps at most {@code budget} tokens each. */
    public static Result run(Transformer model, int budget) {
        long t0 = System.nanoTime();
        int vocab = model.config().vocabSize();
        // The first sequence takes a chunk, a continuation and every decode step: all within the context.
        int context = model.config().maxPositionEmbeddings();
        int decodeSteps = Math.clamp((context - 2) / DECODE_BATCHES.length, 0, DECODE_STEPS);
        int chunk = Math.clamp((context - DECODE_BATCHES.length * decodeSteps) / 2, 1, Math.max(1, budget / SEQUENCES));
        SplittableRandom random = new SplittableRandom(7);
        List<KvCache> caches = new ArrayList<>();
        int steps = 0;
        int tokens = 0;
        try {
            List<SequenceChunk> prefill = new ArrayList<>();
            for (int i = 0; i < SEQUENCES; i++) {
                KvCache cache = model.newCache();
                caches.add(cache);
                prefill.add(SequenceChunk.next(cache, random.ints(chunk, 2, vocab).toArray()));
            }
            List<float[]> logits = model.step(prefill);
            steps++;
            tokens += SEQUENCES * chunk;
            model.step(List.of(SequenceChunk.next(caches.getFirst(), random.ints(chunk, 2, vocab).toArray())));
            steps++;
            tokens += chunk;
            int[] next = new int[SEQUENCES];
            for (int i = 0; i < SEQUENCES; i++) {
                next[i] = VectorOps.argmax(logits.get(i));
            }
            for (int batch : DECODE_BATCHES) {
                for (int k = 0; k < decodeSteps; k++) {
                    List<SequenceChunk> step = new ArrayList<>(batch);
                    for (int i = 0; i < batch; i++) {
                        step.add(SequenceChunk.next(caches.get(i), next[i]));
                    }
                    logits = model.step(step);
                    for (int i = 0; i < batch; i++) {
                        next[i] = VectorOps.argmax(logits.get(i));
                    }
                    steps++;
                    tokens += batch;
                }
            }
        } finally {
            caches.forEach(KvCache::release);
        }
        return new Result(steps, tokens, (System.nanoTime() - t0) / 1_000_000);
    }
}
