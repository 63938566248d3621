package dev.epic.text.output;

/** Where the model's output starts relative to a {@code <think>} block. */
public enum ReasoningMode {
    /** No reasoning parsing: everything is content (e.g. V3 without thinking). */
    NONE,
    /** Reasoning only if the output itself opens with {@code <think>} (leading whitespace allowed). */
    DETECT,
    /**
     * The prompt already opened the block (the Jan-2025 R1 template ends with {@code <think>\n}), so output is
     * reasoning until {@code </think>}; a redundant leading {@code <think>} is dropped. Like vLLM's deepseek_r1
     * parser, output that never closes the block is all reasoning.
     */
    OPEN;

    /**
     * The mode a rendered chat prompt implies: OPEN when it ends inside an opened {@code <think>} (Jan-2025 R1
     * template, V3.1 thinking), NONE when it ends with a closed block (V3.1 non-thinking ends with
     * {@code </think>}), otherwise DETECT (R1-0528 lets the model open the block itself; V3 never does).
     */
    public static ReasoningMode forPrompt(String renderedPrompt) {
        String tail = renderedPrompt.stripTrailing();
        if (tail.endsWith(DeepSeekMarkers.THINK_CLOSE)) {
            return NONE;
        }
        return tail.endsWith(DeepSeekMarkers.THINK_OPEN) ? OPEN : DETECT;
    }
}
