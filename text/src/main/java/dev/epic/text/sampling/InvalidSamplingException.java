package dev.epic.text.sampling;

/** A sampling request field is out of range; the message names the field (OpenAI spelling) and the valid range. */
public final class InvalidSamplingException extends IllegalArgumentException {
    private final String field;

    public InvalidSamplingException(String field, String message) {
        super(field + ": " + message);
        this.field = field;
    }

    /** The offending request field, e.g. {@code "top_p"}. */
    public String field() {
        return field;
    }
}
