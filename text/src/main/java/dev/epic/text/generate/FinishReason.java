package dev.epic.text.generate;

/** Why a generation ended. */
public enum FinishReason {
    /** A stop string or stop token id. */
    STOP("stop"),
    /** The model emitted end-of-sentence. */
    EOS("stop"),
    /** max_tokens or the model's context length was reached. */
    LENGTH("length"),
    /** The model ended after emitting tool calls. */
    TOOL_CALLS("tool_calls"),
    /** The client or server cancelled the request. */
    CANCELLED("cancelled");

    private final String apiName;

    FinishReason(String apiName) {
        this.apiName = apiName;
    }

    /** The OpenAI-compatible {@code finish_reason} string (EOS reports as "stop"). */
    public String apiName() {
        return apiName;
    }
}
