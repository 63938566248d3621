package dev.epic.text.generate;

import dev.epic.text.constrain.JsonSchema;
import dev.epic.text.constrain.TextLanguage;
import dev.epic.text.constrain.ToolCallGrammar;
import dev.epic.text.output.ReasoningMode;
import java.util.Set;
import java.util.UUID;
import java.util.function.Supplier;

/**
 * Model- and template-level settings of a generation (the per-request knobs are in SamplingParams).
 *
 * @param maxContextLength prompt + completion limit in tokens (the model's max_position_embeddings); 0 = none
 * @param reasoning        how to split reasoning from content
 * @param parseToolCalls   turn DeepSeek tool-call blocks into structured calls
 * @param eosTokenIds      ids that end generation as EOS; null = the vocabulary's {@code <｜end▁of▁sentence｜>}
 * @param toolCallIds      call id generator
 * @param jsonSchema       constrain the output to a JSON value matching this schema (null: none;
 *                         {@link JsonSchema#ANY_OBJECT} is OpenAI's JSON mode)
 * @param toolCalls        constrain the output to tool calls of this grammar (null: none; OpenAI's
 *                         forced tool choice)
 * @param textLanguage     constrain the output text to this language (null: none; vLLM's guided
 *                         regex, choice and grammar)
 * @param thinkFirst       with a constraint, where it starts: NONE at once; OPEN after the {@code </think>}
 *                         that closes the block the prompt opened; DETECT after a thinking block the
 *                         output must open and close ({@link dev.epic.text.constrain.ThinkingFirst})
 * @param logitsSize       the model's logits per position (its lm_head rows; 0 = the vocabulary's size):
 *                         a logit bias or stop id past them is refused, as it could never take effect
 */
public record GenerationOptions(int maxContextLength, ReasoningMode reasoning, boolean parseToolCalls,
                                Set<Integer> eosTokenIds, Supplier<String> toolCallIds,
                                JsonSchema jsonSchema, ToolCallGrammar toolCalls, TextLanguage textLanguage,
                                ReasoningMode thinkFirst, int logitsSize) {

    public GenerationOptions {
        if (logitsSize < 0) {
            throw new IllegalArgumentException("logitsSize must be >= 0 (0 = the vocabulary's), got " + logitsSize);
        }
        if (maxContextLength < 0) {
            throw new IllegalArgumentException("maxContextLength must be >= 0 (0 = unlimited), got " + maxContextLength);
        }
        if (reasoning == null || thinkFirst == null) {
            throw new IllegalArgumentException("reasoning modes must not be null");
        }
        eosTokenIds = eosTokenIds == null ? null : Set.copyOf(eosTokenIds);
        if ((jsonSchema != null ? 1 : 0) + (toolCalls != null ? 1 : 0) + (textLanguage != null ? 1 : 0) > 1) {
            throw new IllegalArgumentException("an answer takes one constraint: a JSON value, tool calls or a text language");
        }
        if (toolCallIds == null) {
            toolCallIds = () -> "call_" + UUID.randomUUID().toString().replace("-", "").substring(0, 24);
        }
    }

    /** No context limit, reasoning detected from a leading {@code <think>}, tool calls parsed, vocabulary EOS. */
    public static GenerationOptions defaults() {
        return new GenerationOptions(0, ReasoningMode.DETECT, true, null, null, null, null, null, ReasoningMode.NONE, 0);
    }

    public GenerationOptions withMaxContextLength(int v) {
        return new GenerationOptions(v, reasoning, parseToolCalls, eosTokenIds, toolCallIds, jsonSchema, toolCalls, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withReasoning(ReasoningMode v) {
        return new GenerationOptions(maxContextLength, v, parseToolCalls, eosTokenIds, toolCallIds, jsonSchema, toolCalls, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withParseToolCalls(boolean v) {
        return new GenerationOptions(maxContextLength, reasoning, v, eosTokenIds, toolCallIds, jsonSchema, toolCalls, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withEosTokenIds(Set<Integer> v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, v, toolCallIds, jsonSchema, toolCalls, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withJsonSchema(JsonSchema v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, eosTokenIds, toolCallIds, v, toolCalls, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withToolCalls(ToolCallGrammar v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, eosTokenIds, toolCallIds, jsonSchema, v, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withToolCallIds(Supplier<String> v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, eosTokenIds, v, jsonSchema, toolCalls, textLanguage, thinkFirst, logitsSize);
    }

    public GenerationOptions withThinkFirst(ReasoningMode v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, eosTokenIds, toolCallIds, jsonSchema, toolCalls, textLanguage, v, logitsSize);
    }

    public GenerationOptions withTextLanguage(TextLanguage v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, eosTokenIds, toolCallIds, jsonSchema, toolCalls, v,
                thinkFirst, logitsSize);
    }

    public GenerationOptions withLogitsSize(int v) {
        return new GenerationOptions(maxContextLength, reasoning, parseToolCalls, eosTokenIds, toolCallIds, jsonSchema, toolCalls, textLanguage,
                thinkFirst, v);
    }

    /** Whether the answer is masked to a grammar. */
    public boolean constrained() {
        return jsonSchema != null || toolCalls != null || textLanguage != null;
    }
}
