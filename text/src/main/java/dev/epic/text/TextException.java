package dev.epic.text;

/**
 * Bad text-side input: an unreadable tokenizer file, text that is not valid Unicode, a chat message of the wrong
 * shape, or a chat template that raised. The message names the file/field and what was expected.
 */
public class TextException extends IllegalArgumentException {
    public TextException(String message) {
        super(message);
    }

    public TextException(String message, Throwable cause) {
        super(message, cause);
    }
}
