package dev.epic.transport;

import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.time.Duration;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import java.util.function.LongFunction;
import java.util.function.ToLongFunction;

/**
 * The coordinator side of a long-lived request/response stream to one worker (expert Dispatch,
 * attention Attend): each request carries a sequence number that its response echoes, so answers
 * complete the right futures. A failed stream fails all its outstanding requests; the next send
 * opens a new one.
 */
public final class SequencedStream<Req, Resp> {
    private final String peer;
    private final Consumer<ClientResponseObserver<Req, Resp>> open;
    private final ToLongFunction<Resp> sequenceOf;
    private final Runnable onOpen;
    private final Runnable onAnswer;
    private final Runnable onBreak;
    private final AtomicLong sequence = new AtomicLong();
    private Incarnation current; // guarded by this
    private boolean closed;      // guarded by this

    /**
     * @param peer       names the worker in failure messages
     * @param open       starts the call with the given observer, e.g. {@code o -> stub.dispatch(o)}
     * @param sequenceOf the sequence number a response echoes
     * @param onOpen     runs before a new stream is opened (e.g. to reset the channel's reconnect backoff)
     * @param onAnswer   runs on every response (on the transport thread)
     * @param onBreak    runs when an open stream ends by itself (the worker or the connection ended it)
     */
    public SequencedStream(String peer, Consumer<ClientResponseObserver<Req, Resp>> open, ToLongFunction<Resp> sequenceOf,
            Runnable onOpen, Runnable onAnswer, Runnable onBreak) {
        this.peer = peer;
        this.open = open;
        this.sequenceOf = sequenceOf;
        this.onOpen = onOpen;
        this.onAnswer = onAnswer;
        this.onBreak = onBreak;
    }

    /**
     * A plaintext channel to a worker for such streams. Responses only complete futures, so they run
     * on the event loop (no thread hop). Keepalive pings go out after {@code quiet} without reads
     * and end the connection when unanswered for half that: a worker computes on its event loop,
     * so {@code quiet} must be longer than its longest message.
     */
    public static ManagedChannel channelTo(String address, Duration quiet) {
        return NettyChannelBuilder.forTarget(address)
                .usePlaintext()
                .directExecutor()
                .maxInboundMessageSize(Integer.MAX_VALUE)
                .keepAliveTime(quiet.toMillis(), TimeUnit.MILLISECONDS)
                .keepAliveTimeout(quiet.toMillis() / 2, TimeUnit.MILLISECONDS)
                .build();
    }

    /** Sends {@code request(sequence)}; the future completes with its response or the stream's failure. */
    public CompletableFuture<Resp> send(LongFunction<Req> request) {
        CompletableFuture<Resp> f = new CompletableFuture<>();
        long seq = sequence.incrementAndGet();
        Req req = request.apply(seq);
        Incarnation s;
        synchronized (this) {
            if (closed) {
                f.completeExceptionally(Status.UNAVAILABLE.withDescription("worker " + peer + " left").asException());
                return f;
            }
            if (current == null || current.broken) {
                onOpen.run();
                current = new Incarnation();
                open.accept(current);
            }
            s = current;
            s.pending.put(seq, f);
            try {
                s.requests.onNext(req);
            } catch (RuntimeException e) {
                s.pending.remove(seq);
                f.completeExceptionally(e);
            }
        }
        if (s.broken && s.pending.remove(seq) != null) {
            // the stream failed while we were queueing: nobody else will complete this future
            f.completeExceptionally(Status.UNAVAILABLE.withDescription("stream to " + peer + " failed").asException());
        }
        return f;
    }

    /** Ends the current stream (the worker is presumed dead): its outstanding requests fail with {@code status}. */
    public void fail(Status status) {
        Incarnation s;
        synchronized (this) {
            s = current;
            current = null;
        }
        if (s != null) {
            s.fail(status);
        }
    }

    /** As {@link #fail}, and later sends fail at once. */
    public void close(Status status) {
        synchronized (this) {
            closed = true;
        }
        fail(status);
    }

    /** One opened stream with its outstanding requests. */
    private final class Incarnation implements ClientResponseObserver<Req, Resp> {
        final Map<Long, CompletableFuture<Resp>> pending = new ConcurrentHashMap<>();
        volatile boolean broken;
        ClientCallStreamObserver<Req> requests;

        @Override
        public void beforeStart(ClientCallStreamObserver<Req> requestStream) {
            this.requests = requestStream;
        }

        @Override
        public void onNext(Resp r) {
            CompletableFuture<Resp> f = pending.remove(sequenceOf.applyAsLong(r));
            onAnswer.run();
            if (f != null) {
                f.complete(r);
            }
        }

        @Override
        public void onError(Throwable t) {
            broke();
            failPending(Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            broke();
            failPending(Status.UNAVAILABLE.withDescription("worker " + peer + " closed the stream"));
        }

        /** Ended by the other side (not by {@link #fail}, which marks it broken first). */
        private void broke() {
            if (!broken) {
                broken = true;
                onBreak.run();
            }
        }

        void fail(Status status) {
            broken = true;
            try {
                requests.onError(status.asRuntimeException());
            } catch (RuntimeException ignored) {
                // already closed
            }
            failPending(status);
        }

        private void failPending(Status status) {
            for (Long seq : pending.keySet()) {
                CompletableFuture<Resp> f = pending.remove(seq);
                if (f != null) {
                    f.completeExceptionally(status.asRuntimeException());
                }
            }
        }
    }
}
