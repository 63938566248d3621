package dev.epic.model.checkpoint;

/** A checkpoint that cannot be used as asked: the message names the file and/or tensor and what was expected. */
public final class CheckpointException extends RuntimeException {
    public CheckpointException(String message) {
        super(message);
    }

    public CheckpointException(String message, Throwable cause) {
        super(message, cause);
    }
}
