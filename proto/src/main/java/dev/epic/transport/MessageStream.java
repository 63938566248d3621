package dev.epic.transport;

import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The worker side of a long-lived request/response stream (expert Dispatch, attention Attend):
 * each message is handled and answered in turn. A {@link Refusal} ends the stream with its status;
 * any other failure with INTERNAL. Messages being handled count in {@code inFlight} for the drain.
 */
public abstract class MessageStream<Req, Resp> implements StreamObserver<Req> {
    private static final Logger log = LoggerFactory.getLogger(MessageStream.class);

    /** Ends the stream with {@code status}: the request cannot be served (wrong model, bad shape, full). */
    public static final class Refusal extends RuntimeException {
        private final Status status;

        public Refusal(Status status) {
            super(status.getDescription(), null, false, false);
            this.status = status;
        }

        public Status status() {
            return status;
        }
    }

    private final StreamObserver<Resp> responses;
    private final AtomicInteger inFlight;
    private boolean closed;

    protected MessageStream(StreamObserver<Resp> responses, AtomicInteger inFlight) {
        this.responses = responses;
        this.inFlight = inFlight;
    }

    /** The answer to one message; throws {@link Refusal} to end the stream with a status. */
    protected abstract Resp handle(Req request);

    /** Names the worker and the message in failure logs and INTERNAL statuses. */
    protected abstract String describe(Req request);

    @Override
    public final void onNext(Req req) {
        if (closed) {
            return;
        }
        inFlight.incrementAndGet();
        try {
            responses.onNext(handle(req));
        } catch (Refusal r) {
            closed = true;
            log.warn("ending stream: {}", r.status().getDescription());
            responses.onError(r.status().asRuntimeException());
        } catch (RuntimeException e) {
            closed = true;
            log.error("{} failed", describe(req), e);
            responses.onError(Status.INTERNAL.withDescription(describe(req) + ": " + e).withCause(e).asRuntimeException());
        } finally {
            inFlight.decrementAndGet();
        }
    }

    @Override
    public final void onError(Throwable t) {
        closed = true;
        log.debug("stream ended by the coordinator: {}", t.toString());
    }

    @Override
    public final void onCompleted() {
        if (!closed) {
            closed = true;
            responses.onCompleted();
        }
    }
}
