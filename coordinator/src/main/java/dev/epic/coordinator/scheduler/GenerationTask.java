package dev.epic.coordinator.scheduler;

import dev.epic.text.generate.Delta;
import dev.epic.text.generate.Generation;
import dev.epic.text.sampling.Logprobs;
import java.util.ArrayList;
import java.util.List;

/**
 * A text completion as a scheduled sequence: each step's logits go through the sequence's own
 * {@link Generation} (seeded sampler, stop strings, reasoning and tool-call parsing) and every
 * accepted token's {@link Delta} goes to the sink, on the engine thread.
 */
public final class GenerationTask implements SequenceTask {
    /** Where the deltas of one completion go (a gRPC stream, a test's list). */
    public interface Sink {
        /** One accepted token; the last delta carries the finish reason. */
        void delta(Delta delta);

        /** The sequence was cancelled; {@code last} is the flushed remainder with finish reason CANCELLED. */
        void cancelled(Delta last);

        void failed(Throwable error);

        /** Before the first delta: how many prompt tokens came from the prefix cache. */
        default void promptCached(int tokens) {}

        /** Before the first delta, chunk by chunk: log-probabilities of prompt tokens, in order. */
        default void promptLogprobs(List<Logprobs> logprobs) {}
    }

    private final int[] prompt;
    private final Generation generation;
    private final Sink sink;
    private final Object prefixGroup;
    private final int priority;
    private volatile boolean cancelled;

    public GenerationTask(int[] prompt, Generation generation, Sink sink) {
        this(prompt, generation, sink, null);
    }

    /** @param prefixGroup shared by the samples of one prompt (see {@link SequenceTask#prefixGroup}); may be null */
    public GenerationTask(int[] prompt, Generation generation, Sink sink, Object prefixGroup) {
        this(prompt, generation, sink, prefixGroup, 0);
    }

    /** @param priority its {@link SequenceTask#priority()} (lower first) */
    public GenerationTask(int[] prompt, Generation generation, Sink sink, Object prefixGroup, int priority) {
        this.prompt = prompt.clone();
        this.generation = generation;
        this.sink = sink;
        this.prefixGroup = prefixGroup;
        this.priority = priority;
    }

    @Override
    public int priority() {
        return priority;
    }

    @Override
    public long maxPositions() {
        return generation.maxTotalTokens();
    }

    @Override
    public Object prefixGroup() {
        return prefixGroup;
    }

    /** Asks the scheduler to drop this sequence at the next step boundary (any thread). */
    public void cancel() {
        cancelled = true;
    }

    @Override
    public int[] prompt() {
        return prompt;
    }

    /** Sampling reads and writes only this sequence's generation state (history, RNG, scratch). */
    @Override
    public boolean choosesInParallel() {
        return true;
    }

    @Override
    public int choose(float[] logits) {
        return generation.sample(logits);
    }

    @Override
    public boolean verifiesDrafts() {
        return true;
    }

    @Override
    public int accept(int token) {
        Delta d = generation.accept(token);
        sink.delta(d);
        return generation.finished() ? -1 : token;
    }

    @Override
    public void promptCached(int tokens) {
        sink.promptCached(tokens);
    }

    @Override
    public boolean wantsPromptLogits() {
        return generation.params().promptLogprobs() >= 0;
    }

    /** Row r predicts prompt token start + r + 1; the last prompt position predicts no prompt token. */
    @Override
    public void onPromptLogits(int start, float[] rows, int count) {
        int vocab = rows.length / count;
        List<Logprobs> out = new ArrayList<>(count);
        for (int r = 0; r < count && start + r + 1 < prompt.length; r++) {
            out.add(generation.promptLogprobs(rows, r * vocab, vocab, prompt[start + r + 1]));
        }
        sink.promptLogprobs(out);
    }

    @Override
    public boolean cancelled() {
        return cancelled;
    }

    @Override
    public void onCancelled() {
        if (!generation.finished()) {
            sink.cancelled(generation.cancel());
        }
    }

    @Override
    public void onFailure(Throwable error) {
        sink.failed(error);
    }
}
