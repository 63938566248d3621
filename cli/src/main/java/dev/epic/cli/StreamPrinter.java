package dev.epic.cli;

import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.ToolCall;
import java.io.PrintWriter;

/**
 * Prints a streamed completion for a person: reasoning in its own marked (and, on a terminal,
 * dimmed) section before the answer, tool calls on their own lines, then a summary line with
 * tokens/s.
 */
final class StreamPrinter {
    private static final String DIM = "\u001b[2m";
    private static final String RESET = "\u001b[0m";

    private final PrintWriter out;
    private final boolean ansi;
    private final long start = System.nanoTime();
    private long firstToken;
    private boolean inReasoning;
    private boolean sawReasoning;
    private boolean sawAnswer;
    private int tokens;
    private GenerateResponse last;

    StreamPrinter(PrintWriter out, boolean ansi) {
        this.out = out;
        this.ansi = ansi;
    }

    void accept(GenerateResponse r) {
        if (tokens == 0 && r.getTokenIdsCount() > 0) {
            firstToken = System.nanoTime();
        }
        tokens += r.getTokenIdsCount();
        if (!r.getReasoningText().isEmpty()) {
            if (!inReasoning) {
                out.print(style("[thinking]\n"));
                inReasoning = true;
                sawReasoning = true;
            }
            out.print(style(r.getReasoningText()));
        }
        if (!r.getText().isEmpty()) {
            endReasoning();
            if (!sawAnswer && sawReasoning) {
                out.print("[answer]\n");
            }
            sawAnswer = true;
            out.print(r.getText());
        }
        for (ToolCall c : r.getToolCallsList()) {
            endReasoning();
            out.printf("%n[tool call %s] %s(%s)%n", c.getId(), c.getName(), c.getArguments());
        }
        if (r.getFinishReason() != FinishReason.FINISH_REASON_UNSPECIFIED) {
            last = r;
            endReasoning();
        }
        out.flush();
    }

    private void endReasoning() {
        if (inReasoning) {
            out.print(style("\n[/thinking]") + "\n");
            inReasoning = false;
        }
    }

    private String style(String s) {
        return ansi ? DIM + s + RESET : s;
    }

    /** The summary line: finish reason, token counts, decode speed. */
    String summary() {
        double seconds = (System.nanoTime() - start) / 1e9;
        double decode = tokens > 1 ? (tokens - 1) / ((System.nanoTime() - firstToken) / 1e9) : 0;
        String finish = last == null ? "none" : last.getFinishReason().name().toLowerCase(java.util.Locale.ROOT);
        int prompt = last == null ? 0 : last.getUsage().getPromptTokens();
        int cached = last == null ? 0 : last.getUsage().getCachedPromptTokens();
        return String.format("[finish: %s; prompt %d tokens%s, completion %d tokens in %.2f s; %.1f tokens/s decode, "
                + "first token after %.2f s]", finish, prompt, cached > 0 ? " (" + cached + " cached)" : "", tokens,
                seconds, decode, tokens == 0 ? 0 : (firstToken - start) / 1e9);
    }

    int tokens() {
        return tokens;
    }

    GenerateResponse last() {
        return last;
    }
}
