package dev.epic.model.config;

/** A config.json that cannot be used: unreadable, malformed, or missing/invalid fields. */
public final class ConfigException extends RuntimeException {
    public ConfigException(String message) {
        super(message);
    }

    public ConfigException(String message, Throwable cause) {
        super(message, cause);
    }
}
