package dev.epic.transport;

import io.grpc.Status;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.Timer;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The worker side of a long-lived request/response stream (expert Dispatch, attention Attend):
 * each message is handled and answered in turn. A {@link Refusal} ends the stream with its status;
 * any other failure with INTERNAL. Messages being handled count in {@code inFlight} for the drain.
 * {@link #onEnd()} runs once when the stream is over, however it ended.
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
    private final Timer handled;
    private boolean closed;
    private boolean ended;

    /** @param handled records each answered message's handling time */
    protected MessageStream(StreamObserver<Resp> responses, AtomicInteger inFlight, Timer handled) {
        this.responses = responses;
        this.inFlight = inFlight;
        this.handled = handled;
    }

    /** The answer to one message; throws {@link Refusal} to end the stream with a status. */
    protected abstract Resp handle(Req request);

    /** Names the worker and the message in failure logs and INTERNAL statuses. */
    protected abstract String describe(Req request);

    /** The stream is over (completed, failed, refused or cancelled by the coordinator). */
    protected void onEnd() {}

    private void end() {
        closed = true;
        if (!ended) {
            ended = true;
            onEnd();
        }
    }

    @Override
    public final void onNext(Req req) {
        if (closed) {
            return;
        }
        inFlight.incrementAndGet();
        long t0 = System.nanoTime();
        try {
            Resp answer = handle(req);
            handled.record(System.nanoTime() - t0, TimeUnit.NANOSECONDS);
            if (responses instanceof ServerCallStreamObserver<Resp> call && call.isCancelled()) {
                // the coordinator gave up on this stream (deadline, failover) while we computed
                log.debug("{}: the coordinator cancelled the stream", describe(req));
                end();
                return;
            }
            responses.onNext(answer);
        } catch (Refusal r) {
            end();
            log.warn("ending stream: {}", r.status().getDescription());
            responses.onError(r.status().asRuntimeException());
        } catch (RuntimeException e) {
            end();
            log.error("{} failed", describe(req), e);
            responses.onError(Status.INTERNAL.withDescription(describe(req) + ": " + e).withCause(e).asRuntimeException());
        } finally {
            inFlight.decrementAndGet();
        }
    }

    @Override
    public final void onError(Throwable t) {
        log.debug("stream ended by the coordinator: {}", t.toString());
        end();
    }

    @Override
    public final void onCompleted() {
        if (!closed) {
            responses.onCompleted();
        }
        end();
    }
}
