package dev.epic.coordinator.experts;

import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.ExpertServiceGrpc;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.SequencedStream;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One expert worker as the coordinator sees it: its announcement, a channel, and the one
 * long-lived Dispatch stream to it (reopened after a failure). Responses are matched to requests
 * by sequence number. A failed worker is "dead" for a short backoff, after which it is tried again
 * (with the channel's reconnect backoff reset), so a restarted worker is picked up at once. It stays
 * "suspect", not counting for coverage, until it answers again: a message, or a {@link #probe}.
 */
final class WorkerEndpoint implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(WorkerEndpoint.class);

    private final String path;
    private final ManagedChannel channel;
    private volatile WorkerAnnouncement announcement;
    private volatile long deadUntilNanos;
    /** Failed since its last successful answer or re-registration: does not count for coverage. */
    private volatile boolean suspect;
    private volatile boolean closed;
    private final AtomicBoolean probing = new AtomicBoolean();
    private final SequencedStream<ExpertRequest, ExpertResponse> stream;

    /** Per-call scratch of RemoteExperts (guarded by its lock). */
    final Batch scratch = new Batch(this);

    WorkerEndpoint(String path, WorkerAnnouncement announcement) {
        this.path = path;
        this.announcement = announcement;
        this.channel = SequencedStream.channelTo(announcement.getAddress(), Duration.ofSeconds(10)); // layers take ms
        this.stream = new SequencedStream<>(toString(), o -> ExpertServiceGrpc.newStub(channel).dispatch(o),
                ExpertResponse::getSequence, () -> {
                    if (deadUntilNanos != 0) {
                        channel.resetConnectBackoff();
                    }
                }, () -> suspect = false, () -> {});
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

    /**
     * The znode changed. A new process (the worker re-registered) starts with a clean record; the
     * same process announcing other redundant experts keeps its failures.
     */
    void update(WorkerAnnouncement a) {
        boolean restarted = a.getPid() != announcement.getPid();
        this.announcement = a;
        if (restarted) {
            revive();
        }
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
        stream.fail(Status.UNAVAILABLE.withDescription("worker " + this + " marked dead: " + reason));
    }

    /**
     * Asks a suspect worker whose backoff has passed for its health, on the channel its messages use
     * (so the answer waits behind any message it is still computing); SERVING clears suspect. Without
     * it, a worker that missed one deadline (a GC pause, a long message) would stay suspect for good:
     * while its experts count as missing, admission refuses every request, so no message reaches it
     * to show that it answers. A worker that is gone or still stuck stays suspect.
     */
    void probe(long nowNanos, Duration deadline) {
        if (!suspect || !isLive(nowNanos) || !probing.compareAndSet(false, true)) {
            return;
        }
        long failedUntil = deadUntilNanos;
        HealthGrpc.newStub(channel).withDeadlineAfter(deadline.toNanos(), TimeUnit.NANOSECONDS)
                .check(HealthCheckRequest.getDefaultInstance(), new StreamObserver<>() {
                    @Override
                    public void onNext(HealthCheckResponse r) {
                        // Not if a message failed meanwhile: that failure is newer than this answer.
                        if (r.getStatus() == HealthCheckResponse.ServingStatus.SERVING && deadUntilNanos == failedUntil
                                && suspect) {
                            suspect = false;
                            log.info("expert worker {} answers again: its experts count as covered", WorkerEndpoint.this);
                        }
                    }

                    @Override
                    public void onError(Throwable t) {
                        log.debug("expert worker {} still does not answer: {}", WorkerEndpoint.this, t.toString());
                        probing.set(false);
                    }

                    @Override
                    public void onCompleted() {
                        probing.set(false);
                    }
                });
    }

    /** Sends one message on the dispatch stream; the future completes with its response or the stream's failure. */
    CompletableFuture<ExpertResponse> send(ExpertRequest.Builder request) {
        return stream.send(seq -> request.setSequence(seq).build());
    }

    @Override
    public void close() {
        closed = true;
        stream.close(Status.UNAVAILABLE.withDescription("worker " + this + " left the cluster"));
        channel.shutdownNow();
    }
}
