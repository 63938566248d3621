package dev.epic.coordinator.api;

import com.google.protobuf.Any;
import com.google.rpc.BadRequest;
import com.google.rpc.Code;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;

/**
 * INVALID_ARGUMENT naming the request field at fault in gRPC's rich error model: the description
 * reads "FIELD: REASON" for people, and a {@code google.rpc.BadRequest} detail carries the field
 * path and the reason for programs (the HTTP API maps it to OpenAI's {@code param}).
 */
public final class FieldViolation {
    private FieldViolation() {}

    /** @param field the path in the gRPC request, e.g. {@code sampling.top_p} */
    public static StatusRuntimeException invalid(String field, String reason) {
        BadRequest detail = BadRequest.newBuilder().addFieldViolations(
                BadRequest.FieldViolation.newBuilder().setField(field).setDescription(reason)).build();
        return StatusProto.toStatusRuntimeException(com.google.rpc.Status.newBuilder()
                .setCode(Code.INVALID_ARGUMENT_VALUE).setMessage(field + ": " + reason).addDetails(Any.pack(detail))
                .build());
    }

    /** The first field violation of an error; null when it carries none. */
    public static BadRequest.FieldViolation of(StatusRuntimeException e) {
        com.google.rpc.Status s = StatusProto.fromThrowable(e);
        if (s == null) {
            return null;
        }
        for (Any d : s.getDetailsList()) {
            if (d.is(BadRequest.class)) {
                try {
                    BadRequest b = d.unpack(BadRequest.class);
                    if (b.getFieldViolationsCount() > 0) {
                        return b.getFieldViolations(0);
                    }
                } catch (com.google.protobuf.InvalidProtocolBufferException ignored) {
                    return null; // a malformed detail: the description still says it
                }
            }
        }
        return null;
    }
}
