package dev.epic.coordinator.api;

import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import io.grpc.BindableService;
import io.grpc.ForwardingServerCallListener.SimpleForwardingServerCallListener;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerMethodDefinition;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.util.HashMap;
import java.util.Map;

/**
 * Answers requests that are not valid protobuf (truncated bytes, invalid UTF-8 in a string field)
 * with INVALID_ARGUMENT naming the message type, where gRPC itself would report an opaque INTERNAL or
 * UNKNOWN. Requests reach the service as bytes, are parsed once here to check them, then parsed by the
 * service's own marshaller.
 */
public final class MalformedRequests {
    private MalformedRequests() {}

    private static final MethodDescriptor.Marshaller<byte[]> BYTES = new MethodDescriptor.Marshaller<>() {
        @Override
        public InputStream stream(byte[] value) {
            return new ByteArrayInputStream(value);
        }

        @Override
        public byte[] parse(InputStream stream) {
            try {
                return stream.readAllBytes();
            } catch (IOException e) {
                throw Status.INTERNAL.withDescription("cannot read message: " + e.getMessage()).asRuntimeException();
            }
        }
    };

    /** The service's definition with every request checked before it reaches the service. */
    public static ServerServiceDefinition guard(BindableService service) {
        ServerServiceDefinition original = service.bindService();
        Map<String, Parser<?>> parsers = new HashMap<>();
        Map<String, String> types = new HashMap<>();
        for (ServerMethodDefinition<?, ?> m : original.getMethods()) {
            MethodDescriptor<?, ?> d = m.getMethodDescriptor();
            if (d.getRequestMarshaller() instanceof MethodDescriptor.PrototypeMarshaller<?> p
                    && p.getMessagePrototype() instanceof MessageLite proto) {
                parsers.put(d.getFullMethodName(), proto.getParserForType());
                types.put(d.getFullMethodName(), proto.getClass().getSimpleName());
            }
        }
        ServerServiceDefinition bytes = ServerInterceptors.useMarshalledMessages(original, BYTES, BYTES);
        return ServerInterceptors.intercept(bytes, new ServerInterceptor() {
            @Override
            public <ReqT, RespT> ServerCall.Listener<ReqT> interceptCall(ServerCall<ReqT, RespT> call, Metadata headers,
                    ServerCallHandler<ReqT, RespT> next) {
                String method = call.getMethodDescriptor().getFullMethodName();
                Parser<?> parser = parsers.get(method);
                ServerCall.Listener<ReqT> delegate = next.startCall(call, headers);
                if (parser == null) {
                    return delegate;
                }
                return new SimpleForwardingServerCallListener<>(delegate) {
                    private boolean rejected;

                    @Override
                    public void onMessage(ReqT message) {
                        try {
                            parser.parseFrom((byte[]) message);
                        } catch (InvalidProtocolBufferException e) {
                            rejected = true;
                            call.close(Status.INVALID_ARGUMENT.withDescription("request is not a valid "
                                    + types.get(method) + ": " + e.getMessage()), new Metadata());
                            return;
                        }
                        super.onMessage(message);
                    }

                    @Override
                    public void onHalfClose() {
                        if (!rejected) {
                            super.onHalfClose();
                        }
                    }
                };
            }
        });
    }
}
