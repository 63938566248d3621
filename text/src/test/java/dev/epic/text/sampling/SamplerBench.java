package dev.epic.text.sampling;

import java.util.random.RandomGenerator;

/**
 * Manual micro-benchmark (not a test): time per sampled token over DeepSeek-V3's 129,280 logits.
 * Run after {@code ./mvnw -pl text test-compile}:
 * {@code java --add-modules jdk.incubator.vector -cp text/target/classes:text/target/test-classes dev.epic.text.sampling.SamplerBench}
 */
public final class SamplerBench {
    private SamplerBench() {
    }

    public static void main(String[] args) {
        int n = 129_280;
        RandomGenerator g = SamplingParams.builder().seed(5).build().newRandom();
        float[] logits = new float[n];
        for (int i = 0; i < n; i++) {
            logits[i] = (float) (g.nextGaussian() * 3 - 5);  // broad tail
        }
        for (int k = 0; k < 50; k++) {
            logits[g.nextInt(n)] = (float) (10 + g.nextDouble() * 6); // a few likely tokens
        }
        TokenHistory history = TokenHistory.ofPrompt(g.ints(2000, 0, n).toArray());
        for (int i = 0; i < 500; i++) {
            history.addGenerated(g.nextInt(n));
        }
        String[] names = {"greedy", "T=0.6 top_p=0.95 (default)", "T=1 (no filter)", "T=1 top_k=50",
            "T=1 min_p=0.05", "default + all penalties"};
        SamplingParams[] ps = {
            SamplingParams.builder().temperature(0).build(),
            SamplingParams.builder().seed(1).build(),
            SamplingParams.builder().temperature(1).topP(1).seed(1).build(),
            SamplingParams.builder().temperature(1).topP(1).topK(50).seed(1).build(),
            SamplingParams.builder().temperature(1).topP(1).minP(0.05).seed(1).build(),
            SamplingParams.builder().seed(1).presencePenalty(0.5).frequencyPenalty(0.5).repetitionPenalty(1.1).build()};
        Sampler s = new Sampler();
        run(s, logits, history, names, ps);
        // A random model's logits: flat, so top-p keeps most of the vocabulary.
        for (int i = 0; i < n; i++) {
            logits[i] = (float) (g.nextGaussian() * 0.5);
        }
        System.out.println("flat logits (a random model):");
        run(s, logits, history, names, ps);
    }

    private static void run(Sampler s, float[] logits, TokenHistory history, String[] names, SamplingParams[] ps) {
        int n = logits.length;
        float[] work = new float[n];
        for (int p = 0; p < ps.length; p++) {
            RandomGenerator rng = ps[p].newRandom();
            long sink = 0;
            for (int round = 0; round < 2; round++) { // round 0 warms up the JIT
                int iters = 3000;
                long t0 = System.nanoTime();
                for (int i = 0; i < iters; i++) {
                    System.arraycopy(logits, 0, work, 0, n);
                    sink += s.sample(work, n, ps[p], history, rng);
                }
                long t1 = System.nanoTime();
                if (round == 1) {
                    System.out.printf("%-28s %8.1f us/token (includes a 129k-float copy)  [%d]%n",
                            names[p], (t1 - t0) / 1e3 / iters, sink % 7);
                }
            }
        }
    }
}
