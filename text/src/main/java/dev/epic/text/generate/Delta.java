package dev.epic.text.generate;

import dev.epic.text.output.ToolCall;
import dev.epic.text.sampling.Logprobs;
import java.util.List;

/**
 * What one accepted token adds to the response. Text fields are never null (empty when nothing new);
 * text may lag tokens because partial UTF-8 characters, possible stop strings and possible markers are held
 * back until decided.
 *
 * @param tokenIds     the token(s) accepted in this step
 * @param logprobs     their log-probabilities when the request asked for them (else empty)
 * @param content      new visible answer text
 * @param reasoning    new {@code reasoning_content} text
 * @param toolCalls    tool calls completed in this step (or reported incomplete at the end)
 * @param finishReason set on the last delta only
 * @param usage        counts so far
 */
public record Delta(int[] tokenIds, List<Logprobs> logprobs, String content, String reasoning, List<ToolCall> toolCalls,
                    FinishReason finishReason, Usage usage) {

    public boolean finished() {
        return finishReason != null;
    }

    /** True when there is nothing to show a client (tokens may still have been consumed). */
    public boolean hasNoOutput() {
        return content.isEmpty() && reasoning.isEmpty() && toolCalls.isEmpty() && finishReason == null;
    }
}
