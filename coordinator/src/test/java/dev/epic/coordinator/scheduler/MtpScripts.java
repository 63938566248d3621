package dev.epic.coordinator.scheduler;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.VectorOps;
import dev.epic.model.KvCache;
import dev.epic.model.SequenceChunk;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Mtp;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationResult;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.tokenizer.Tokenizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

/**
 * What the MTP drafting tests share: tiny-v3 (it has an MTP layer) drafting with it in process, the MTP
 * layer's predictions computed apart over a whole sequence, and tasks that choose a script of tokens
 * built from them (see {@link MtpDraftingTest}).
 */
final class MtpScripts {
    static final Tokenizer VOCAB = Tokenizer.deepSeekV3();
    /** Memory-mapped once for the test JVM (its classes share it). */
    static final Checkpoint CHECKPOINT = Checkpoint.open(TestData.model("tiny-v3"));
    static final Transformer MODEL = Transformer.load(CHECKPOINT).enableMtp();
    private static final Transformer model = MODEL;

    private MtpScripts() {}

    static int[] prompt(int length, int seed) {
        int[] p = new int[length];
        for (int i = 0; i < length; i++) {
            p[i] = (seed * 131 + i * 977) % model.config().vocabSize();
        }
        return p;
    }

    /** The MTP layer's prediction of the token after s's last: its argmax at position s.length - 2, from scratch. */
    static int mtpPrediction(int[] s) {
        KvCache cache = model.newCache();
        int n = s.length - 1;
        float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(cache, Arrays.copyOf(s, n), 0))).hidden();
        float[] logits = model.mtp().step(List.of(new Mtp.Chunk(cache, 0, Arrays.copyOfRange(s, 1, n + 1), hidden, 0,
                true))).getFirst().logits();
        return VectorOps.argmax(logits);
    }

    /**
     * The tokens a task chooses: the first freely, then per pattern letter the MTP's draft and a free
     * token (A: a step that keeps its draft), another token (R: a step that does not), or the MTP's
     * draft alone (M: every token the MTP layer's prediction, so every draft is kept however the steps fall).
     */
    static int[] script(int[] prompt, String pattern) {
        int vocab = model.config().vocabSize();
        List<Integer> chosen = new ArrayList<>();
        int[] s = Arrays.copyOf(prompt, prompt.length + 1);
        s[prompt.length] = 3; // the first token, chosen from the prompt's logits
        chosen.add(3);
        for (char step : pattern.toCharArray()) {
            int draft = mtpPrediction(s);
            int[] next = switch (step) {
                case 'A' -> new int[] {draft, (draft * 7 + 11) % vocab};
                case 'R' -> new int[] {(draft + 1) % vocab};
                default -> new int[] {draft};
            };
            for (int t : next) {
                s = Arrays.copyOf(s, s.length + 1);
                s[s.length - 1] = t;
                chosen.add(t);
            }
        }
        return chosen.stream().mapToInt(Integer::intValue).toArray();
    }

    /**
     * The MTP layer's {@code depth} chained drafts to follow s's last token (the pending one), from
     * scratch: its first pass over every position before, then each further one on its own output.
     */
    static int[] mtpChain(int[] s, int depth) {
        KvCache cache = model.newCache();
        int n = s.length - 1;
        float[] hidden = model.stepWithHidden(List.of(new SequenceChunk(cache, Arrays.copyOf(s, n), 0))).hidden();
        Mtp.Draft d = model.mtp().step(List.of(new Mtp.Chunk(cache, 0, Arrays.copyOfRange(s, 1, n + 1), hidden, 0,
                true))).getFirst();
        int[] drafts = new int[depth];
        drafts[0] = VectorOps.argmax(d.logits());
        for (int k = 1; k < depth; k++) {
            d = model.mtp().step(List.of(new Mtp.Chunk(cache, n + k - 1, new int[] {drafts[k - 1]}, d.hidden(), 0, true)))
                    .getFirst();
            drafts[k] = VectorOps.argmax(d.logits());
        }
        return drafts;
    }

    /**
     * A script for two drafts a step: per letter the step keeps both drafts and a free token follows
     * (A), keeps the first and another token follows (B), or keeps none (R).
     */
    static int[] chainedScript(int[] prompt, String pattern) {
        int vocab = model.config().vocabSize();
        List<Integer> chosen = new ArrayList<>(List.of(3));
        int[] s = Arrays.copyOf(prompt, prompt.length + 1);
        s[prompt.length] = 3;
        for (char step : pattern.toCharArray()) {
            int[] d = mtpChain(s, 2);
            int[] next = switch (step) {
                case 'A' -> new int[] {d[0], d[1], (d[1] * 7 + 11) % vocab};
                case 'B' -> new int[] {d[0], (d[1] + 1) % vocab};
                default -> new int[] {(d[0] + 1) % vocab};
            };
            for (int t : next) {
                s = Arrays.copyOf(s, s.length + 1);
                s[s.length - 1] = t;
                chosen.add(t);
            }
        }
        return chosen.stream().mapToInt(Integer::intValue).toArray();
    }

    /** Chooses its script whatever the logits, and checks drafts as generation does. */
    static final class Scripted implements SequenceTask {
        final int[] prompt;
        final int[] script;
        final CountDownLatch done = new CountDownLatch(1);
        volatile Throwable failure;
        private int n;

        Scripted(int[] prompt, int[] script) {
            this.prompt = prompt;
            this.script = script;
        }

        @Override
        public int[] prompt() {
            return prompt;
        }

        @Override
        public long maxPositions() {
            return prompt.length + script.length + 4;
        }

        @Override
        public boolean choosesInParallel() {
            return true;
        }

        @Override
        public boolean verifiesDrafts() {
            return true;
        }

        @Override
        public int choose(float[] logits) {
            return script[n];
        }

        @Override
        public int accept(int token) {
            if (++n == script.length) {
                done.countDown();
                return -1;
            }
            return token;
        }

        @Override
        public boolean cancelled() {
            return false;
        }

        @Override
        public void onCancelled() {
            failure = new IllegalStateException("cancelled");
            done.countDown();
        }

        @Override
        public void onFailure(Throwable error) {
            failure = error;
            done.countDown();
        }

        void await() throws InterruptedException {
            assertTrue(done.await(60, TimeUnit.SECONDS), "the script did not finish");
            assertNull(failure);
            assertEquals(script.length, n);
        }
    }

    static long count(String pattern, char c) {
        return pattern.chars().filter(x -> x == c).count();
    }

    /** Runs {@code tasks} together and returns the closed scheduler (its last step counted); asserts each finished its script. */
    static Scheduler run(Transformer model, SchedulerOptions options, List<Scripted> tasks) throws Exception {
        Scheduler s = new Scheduler(model, options);
        try (s) {
            tasks.forEach(s::submit);
            s.start();
            for (Scripted t : tasks) {
                t.await();
            }
        }
        return s;
    }

    /** Runs {@code tasks} one after another on one scheduler (a later one may start from an earlier one's blocks); returns it closed. */
    static Scheduler inTurn(Transformer model, SchedulerOptions options, List<Scripted> tasks) throws Exception {
        Scheduler s = new Scheduler(model, options);
        try (s) {
            s.start();
            for (Scripted t : tasks) {
                s.submit(t);
                t.await();
            }
        }
        return s;
    }

    static long[] counts(Scheduler s) {
        return new long[] {s.draftTokens(), s.acceptedDrafts()};
    }

    static List<GenerationResult> generate(Transformer model, SchedulerOptions options, List<int[]> prompts,
            SamplingParams p) throws Exception {
        List<CollectingSink> sinks = new ArrayList<>();
        try (Scheduler s = new Scheduler(model, options)) {
            for (int[] prompt : prompts) {
                CollectingSink sink = new CollectingSink();
                sinks.add(sink);
                s.submit(new GenerationTask(prompt, new Generation(VOCAB, prompt, p), sink));
            }
            s.start();
            List<GenerationResult> out = new ArrayList<>();
            for (CollectingSink sink : sinks) {
                out.add(sink.done.get(60, TimeUnit.SECONDS));
            }
            if (options.speculation().mtp()) { // a draft every step after the first token
                assertTrue(s.draftTokens() > 0 && s.draftTokens() <= prompts.size() * 23L * options.speculation().tokens(),
                        s.draftTokens() + " drafts");
            }
            return out;
        }
    }
}
