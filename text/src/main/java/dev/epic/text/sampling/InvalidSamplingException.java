package dev.epic.text.sampling;

/** A sampling request field is out of range; the message names the field (OpenAI spelling) and the valid range. */
public final class InvalidSamplingException extends IllegalArgumentException {
    private final String field;
    private final String reason;

    public InvalidSamplingException(String field, String reason) {
        super(field + ": " + reason);
        this.field = field;
        this.reason = reason;
    }

    /** What is wrong with the field, without its name (e.g. "must be in (0, 1], got 2.0"). */
    public String reason() {
        return reason;
    }

    /** The offending request field, e.g. {@code "top_p"}. */
    public String field() {
        return field;
    }
}
