package dev.epic.transport;

import io.grpc.Status;

/**
 * A failed call in one line: code, description and the cause's message ("UNAVAILABLE: io
 * exception (Connection refused: /127.0.0.1:50051)"), for logs and command-line errors;
 * {@code Status.toString} carries the cause's whole stack trace.
 */
public final class StatusText {
    private StatusText() {}

    public static String of(Status s) {
        StringBuilder b = new StringBuilder(s.getCode().name());
        if (s.getDescription() != null) {
            b.append(": ").append(s.getDescription());
        }
        if (s.getCause() != null && s.getCause().getMessage() != null) {
            b.append(" (").append(s.getCause().getMessage()).append(')');
        }
        return b.toString();
    }

    public static String of(Throwable t) {
        return of(Status.fromThrowable(t));
    }
}
