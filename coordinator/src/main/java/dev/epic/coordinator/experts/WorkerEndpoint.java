package dev.epic.coordinator.experts;

import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.ExpertServiceGrpc;
import dev.epic.proto.WorkerAnnouncement;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import io.grpc.stub.StreamObserver;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One expert worker as the coordinator sees it: its announcement, a channel, and the one
 * long-lived Dispatch stream to it (reopened after a failure). Responses are matched to requests
 * by sequence number. A failed worker is "dead" for a short backoff, after which it is tried again
 * (with the channel's reconnect backoff reset), so a restarted worker is picked up at once.
 */
final class WorkerEndpoint implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WorkerEndpoint.class);

    private final String path;
    private final ManagedChannel channel;
    private final AtomicLong sequence = new AtomicLong();
    private volatile WorkerAnnouncement announcement;
    private volatile long deadUntilNanos;
    /** Failed since its last successful answer or re-registration: does not count for coverage. */
    private volatile boolean suspect;
    private volatile boolean closed;
    private DispatchStream stream; // guarded by this

    /** Per-call scratch of RemoteExperts (guarded by its lock). */
    final Batch scratch = new Batch(this);

    WorkerEndpoint(String path, WorkerAnnouncement announcement) {
        this.path = path;
        this.announcement = announcement;
        this.channel = NettyChannelBuilder.forTarget(announcement.getAddress())
                .usePlaintext()
                // responses only complete a future: run them on the event loop, no thread hop
                .directExecutor()
                .maxInboundMessageSize(Integer.MAX_VALUE)
                .keepAliveTime(10, TimeUnit.SECONDS)
                .keepAliveTimeout(5, TimeUnit.SECONDS)
                .build();
    }

    String path() {
        return path;
    }

    WorkerAnnouncement announcement() {
        return announcement;
    }

    String address() {
        return announcement.getAddress();
    }

    @Override
    public String toString() {
        return announcement.getWorkerId() + "@" + announcement.getAddress();
    }

    /** The znode changed (e.g. the worker re-registered): forget past failures. */
    void update(WorkerAnnouncement a) {
        this.announcement = a;
        revive();
    }

    void revive() {
        deadUntilNanos = 0;
        suspect = false;
        channel.resetConnectBackoff();
    }

    /** May be routed to: not failed, or its failure backoff has passed (then it is tried again). */
    boolean isLive(long nowNanos) {
        return !closed && nowNanos - deadUntilNanos >= 0;
    }

    /** Counts for coverage: registered and not failed since its last success. */
    boolean isHealthy() {
        return !closed && !suspect;
    }

    void markDead(String reason, long backoffNanos) {
        deadUntilNanos = System.nanoTime() + backoffNanos;
        suspect = true;
        log.warn("expert worker {} marked dead for {} ms: {}", this, TimeUnit.NANOSECONDS.toMillis(backoffNanos), reason);
        DispatchStream s;
        synchronized (this) {
            s = stream;
            stream = null;
        }
        if (s != null) {
            s.fail(Status.UNAVAILABLE.withDescription("worker " + this + " marked dead: " + reason));
        }
    }

    /** Sends one message on the dispatch stream; the future completes with its response or the stream's failure. */
    CompletableFuture<ExpertResponse> send(ExpertRequest.Builder request) {
        CompletableFuture<ExpertResponse> f = new CompletableFuture<>();
        long seq = sequence.incrementAndGet();
        ExpertRequest req = request.setSequence(seq).build();
        DispatchStream s;
        synchronized (this) {
            if (closed) {
                f.completeExceptionally(Status.UNAVAILABLE.withDescription("worker " + this + " left").asException());
                return f;
            }
            if (stream == null || stream.broken) {
                if (deadUntilNanos != 0) {
                    channel.resetConnectBackoff();
                }
                stream = new DispatchStream();
                stream.open();
            }
            s = stream;
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
            f.completeExceptionally(Status.UNAVAILABLE.withDescription("stream to " + this + " failed").asException());
        }
        return f;
    }

    @Override
    public void close() {
        DispatchStream s;
        synchronized (this) {
            closed = true;
            s = stream;
            stream = null;
        }
        if (s != null) {
            s.fail(Status.UNAVAILABLE.withDescription("worker " + this + " left the cluster"));
        }
        channel.shutdownNow();
    }

    /** One incarnation of the Dispatch stream with its outstanding requests. */
    private final class DispatchStream implements ClientResponseObserver<ExpertRequest, ExpertResponse> {
        final Map<Long, CompletableFuture<ExpertResponse>> pending = new ConcurrentHashMap<>();
        volatile boolean broken;
        ClientCallStreamObserver<ExpertRequest> requests;

        void open() {
            ExpertServiceGrpc.newStub(channel).dispatch(this);
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<ExpertRequest> requestStream) {
            this.requests = requestStream;
        }

        @Override
        public void onNext(ExpertResponse r) {
            CompletableFuture<ExpertResponse> f = pending.remove(r.getSequence());
            suspect = false;
            if (f != null) {
                f.complete(r);
            }
        }

        @Override
        public void onError(Throwable t) {
            broken = true;
            failPending(Status.fromThrowable(t));
        }

        @Override
        public void onCompleted() {
            broken = true;
            failPending(Status.UNAVAILABLE.withDescription("worker " + WorkerEndpoint.this + " closed the stream"));
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
                CompletableFuture<ExpertResponse> f = pending.remove(seq);
                if (f != null) {
                    f.completeExceptionally(status.asRuntimeException());
                }
            }
        }
    }
}
