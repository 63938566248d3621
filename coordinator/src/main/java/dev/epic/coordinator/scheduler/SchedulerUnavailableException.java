package dev.epic.coordinator.scheduler;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * The scheduler takes no more work: it was shut down, or its engine thread died. Surfaces as gRPC
 * UNAVAILABLE (HTTP 503): the request may succeed on another coordinator, or on this one restarted.
 */
public final class SchedulerUnavailableException extends StatusRuntimeException {
    public SchedulerUnavailableException(String message, Throwable cause) {
        super(Status.UNAVAILABLE.withDescription(message).withCause(cause));
    }
}
