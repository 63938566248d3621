package dev.epic.text.generate;

import dev.epic.text.output.ToolCall;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/** A whole response, for non-streaming callers: the deltas of one generation folded together. */
public record GenerationResult(int[] tokenIds, String content, String reasoning, List<ToolCall> toolCalls,
                               FinishReason finishReason, Usage usage) {

    /** Folds deltas in order. */
    public static final class Accumulator {
        private int[] tokens = new int[16];
        private int count;
        private final StringBuilder content = new StringBuilder();
        private final StringBuilder reasoning = new StringBuilder();
        private final List<ToolCall> calls = new ArrayList<>();
        private FinishReason finishReason;
        private Usage usage = new Usage(0, 0);

        public Accumulator add(Delta d) {
            for (int t : d.tokenIds()) {
                if (count == tokens.length) {
                    tokens = Arrays.copyOf(tokens, count * 2);
                }
                tokens[count++] = t;
            }
            content.append(d.content());
            reasoning.append(d.reasoning());
            calls.addAll(d.toolCalls());
            if (d.finishReason() != null) {
                finishReason = d.finishReason();
            }
            usage = d.usage();
            return this;
        }

        public GenerationResult build() {
            return new GenerationResult(Arrays.copyOf(tokens, count), content.toString(), reasoning.toString(),
                    List.copyOf(calls), finishReason, usage);
        }
    }
}
