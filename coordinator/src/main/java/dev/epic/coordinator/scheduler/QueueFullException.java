package dev.epic.coordinator.scheduler;

/** The scheduler's waiting queue is at its bound; the caller should retry later (RESOURCE_EXHAUSTED). */
public final class QueueFullException extends RuntimeException {
    public QueueFullException(String message) {
        super(message);
    }
}
