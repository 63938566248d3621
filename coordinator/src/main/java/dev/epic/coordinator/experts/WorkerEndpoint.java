package dev.epic.coordinator.experts;

import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.ExpertServiceGrpc;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.SequencedStream;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
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
    private volatile WorkerAnnouncement announcement;
    private volatile long deadUntilNanos;
    /** Failed since its last successful answer or re-registration: does not count for coverage. */
    private volatile boolean suspect;
    private volatile boolean closed;
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
