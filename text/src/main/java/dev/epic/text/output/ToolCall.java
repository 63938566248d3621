package dev.epic.text.output;

/**
 * One function call the model emitted.
 *
 * @param index     position among this response's calls (0-based)
 * @param id        call id for the API ({@code call_...})
 * @param name      function name; may be empty when the call was cut off before its name
 * @param arguments the arguments JSON text as generated (whitespace-trimmed)
 * @param status    whether the call is usable
 * @param error     why not, for MALFORMED and INCOMPLETE; null when COMPLETE
 */
public record ToolCall(int index, String id, String name, String arguments, Status status, String error) {
    public enum Status {
        /** Name present, arguments are a valid JSON object. */
        COMPLETE,
        /** The call block ended but its name or arguments JSON is invalid. */
        MALFORMED,
        /** The stream ended (e.g. max_tokens) inside the call. */
        INCOMPLETE
    }

    public boolean ok() {
        return status == Status.COMPLETE;
    }

    /** OpenAI's tool call type; DeepSeek only emits functions. */
    public String type() {
        return "function";
    }
}
