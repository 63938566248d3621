package dev.epic.worker;

import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.ExpertServiceGrpc;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

/** Test client: one request on a fresh Dispatch stream, for checking what a worker answers or refuses. */
public final class DispatchOnce {
    private DispatchOnce() {}

    /** The worker's answer; a refusal is thrown as its StatusRuntimeException. */
    public static ExpertResponse send(ManagedChannel ch, ExpertRequest req) throws Exception {
        CompletableFuture<ExpertResponse> f = new CompletableFuture<>();
        StreamObserver<ExpertRequest> requests = ExpertServiceGrpc.newStub(ch).dispatch(new StreamObserver<>() {
            @Override
            public void onNext(ExpertResponse r) {
                f.complete(r);
            }

            @Override
            public void onError(Throwable t) {
                f.completeExceptionally(t);
            }

            @Override
            public void onCompleted() {}
        });
        requests.onNext(req);
        try {
            return f.get(10, TimeUnit.SECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() instanceof StatusRuntimeException s ? s : Status.fromThrowable(e.getCause()).asRuntimeException();
        } finally {
            requests.onCompleted();
        }
    }

    /** OK if the worker answered, else the status it ended the stream with. */
    public static Status status(ManagedChannel ch, ExpertRequest req) throws Exception {
        try {
            send(ch, req);
            return Status.OK;
        } catch (StatusRuntimeException e) {
            return e.getStatus();
        }
    }
}
