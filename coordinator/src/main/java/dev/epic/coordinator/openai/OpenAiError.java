package dev.epic.coordinator.openai;

import com.google.rpc.BadRequest;
import dev.epic.coordinator.api.FieldViolation;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;

/**
 * An error answered in OpenAI's shape, {@code {"error": {"message", "type", "param", "code"}}}, with
 * its HTTP status. gRPC statuses from the coordinator map onto the codes OpenAI clients retry on
 * (429, 503) or report (400, 404).
 */
final class OpenAiError extends RuntimeException {
    final int httpStatus;
    final String type;
    final String param;

    OpenAiError(int httpStatus, String type, String param, String message) {
        super(message);
        this.httpStatus = httpStatus;
        this.type = type;
        this.param = param;
    }

    /** 400: the request is wrong; {@code param} names the field, or is null. */
    static OpenAiError badRequest(String param, String message) {
        return new OpenAiError(400, "invalid_request_error", param, message);
    }

    /** This error with {@code param} {@code from} named {@code to} (a field the client sent under another name). */
    OpenAiError renamed(String from, String to) {
        if (!from.equals(param)) {
            return this;
        }
        return new OpenAiError(httpStatus, type, to, getMessage().replace("'" + from + "'", "'" + to + "'"));
    }

    static OpenAiError of(StatusRuntimeException e) {
        Status status = e.getStatus();
        String message = status.getDescription() != null ? status.getDescription() : status.getCode().name();
        return switch (status.getCode()) {
            case INVALID_ARGUMENT, OUT_OF_RANGE, FAILED_PRECONDITION -> {
                // The field at fault, from the error's BadRequest detail: sampling fields are spelled as
                // in the HTTP body, one level down in the gRPC request.
                BadRequest.FieldViolation v = FieldViolation.of(e);
                if (v == null) {
                    yield badRequest(null, message);
                }
                String param = v.getField().startsWith("sampling.") ? v.getField().substring("sampling.".length())
                        : v.getField();
                yield badRequest(param, "'" + param + "': " + v.getDescription());
            }
            case NOT_FOUND -> new OpenAiError(404, "not_found_error", null, message);
            case RESOURCE_EXHAUSTED -> new OpenAiError(429, "rate_limit_error", null, message);
            case UNAVAILABLE -> new OpenAiError(503, "service_unavailable", null, message);
            case DEADLINE_EXCEEDED -> new OpenAiError(504, "timeout", null, message);
            case CANCELLED -> new OpenAiError(499, "cancelled", null, message);
            case UNIMPLEMENTED -> new OpenAiError(501, "not_implemented", null, message);
            default -> new OpenAiError(500, "server_error", null, message);
        };
    }
}
