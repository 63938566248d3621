package dev.epic.coordinator.experts;

import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * The live expert workers cannot serve a step: some experts have no live replica, or every
 * replica failed. Thrown within seconds instead of waiting; surfaces as gRPC UNAVAILABLE.
 */
public final class ExpertsUnavailableException extends StatusRuntimeException {
    public ExpertsUnavailableException(String message) {
        super(Status.UNAVAILABLE.withDescription(message));
    }

    public ExpertsUnavailableException(String message, Throwable cause) {
        super(Status.UNAVAILABLE.withDescription(message).withCause(cause));
    }
}
