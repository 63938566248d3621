package dev.epic.coordinator.scheduler;

import dev.epic.kernels.VectorOps;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletableFuture;

/**
 * The {@code epic logits} protocol as a scheduled sequence: the logits of the last prompt position,
 * then {@code steps} greedy steps through the KV cache, each feeding the previous argmax.
 */
public final class LogitsTask implements SequenceTask {
    /** steps + 1 logits vectors and the argmax of each. */
    public record Result(List<float[]> logits, int[] argmax) {}

    private final int[] prompt;
    private final int steps;
    private final List<float[]> logits = new ArrayList<>();
    private final CompletableFuture<Result> result = new CompletableFuture<>();
    private volatile boolean cancelled;
    private volatile int cachedPromptTokens;

    public LogitsTask(int[] prompt, int steps) {
        if (steps < 0) {
            throw new IllegalArgumentException("steps must be >= 0, got " + steps);
        }
        this.prompt = prompt.clone();
        this.steps = steps;
    }

    public CompletableFuture<Result> result() {
        return result;
    }

    public void cancel() {
        cancelled = true;
    }

    /** Prompt tokens that came from the prefix cache, as usage reports them. */
    public int cachedPromptTokens() {
        return cachedPromptTokens;
    }

    @Override
    public void promptCached(int tokens) {
        cachedPromptTokens = tokens;
    }

    @Override
    public int[] prompt() {
        return prompt;
    }

    @Override
    public long maxPositions() {
        return (long) prompt.length + steps;
    }

    @Override
    public int onLogits(float[] l) {
        logits.add(l.clone());
        int token = VectorOps.argmax(l);
        if (logits.size() == steps + 1) {
            int[] tokens = logits.stream().mapToInt(VectorOps::argmax).toArray();
            result.complete(new Result(List.copyOf(logits), tokens));
            return -1;
        }
        return token;
    }

    @Override
    public boolean cancelled() {
        return cancelled;
    }

    @Override
    public void onCancelled() {
        result.completeExceptionally(new CancellationException("logits request cancelled"));
    }

    @Override
    public void onFailure(Throwable error) {
        result.completeExceptionally(error);
    }
}
