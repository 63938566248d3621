package dev.epic.coordinator.attention;

import dev.epic.model.KvPool;
import dev.epic.proto.AttendRequest;
import dev.epic.proto.AttendResponse;
import dev.epic.proto.AttentionServiceGrpc;
import dev.epic.proto.PrefixKeep;
import dev.epic.proto.ReleaseRequest;
import dev.epic.proto.ReleaseResponse;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.SequencedStream;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Queue;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One attention worker as the coordinator sees it: its announcement, a channel, the one long-lived
 * Attend stream to it (reopened after a failure) and the sequences placed on it. A failure ends an
 * epoch: the worker's caches are presumed lost, so sequences placed in an earlier epoch cannot go on
 * there. After a short backoff the worker may take new sequences again.
 */
final class AttentionEndpoint implements KvPool, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AttentionEndpoint.class);

    private final String path;
    private final WorkerAnnouncement announcement;
    private final ManagedChannel channel;
    private volatile long deadUntilNanos;
    /** Refused new sequences (it holds its maximum) until then: not offered more. */
    private volatile long fullUntilNanos;
    private volatile boolean closed;
    /** Caches released since the last message: the next one tells the worker (see send). */
    private final Queue<Long> released = new ConcurrentLinkedQueue<>();
    private long epoch; // guarded by this
    /** Prefix blocks to drop and to keep, for the next message (see send); this epoch's only. */
    private final List<PrefixKeep> keeps = new ArrayList<>(); // guarded by this
    private final List<Long> drops = new ArrayList<>(); // guarded by this
    /** Blocks of queued keeps dropped before they were sent: left out of them. */
    private final Set<Long> cancelled = new HashSet<>(); // guarded by this
    /** This coordinator's sequences placed here in this epoch. */
    private final Set<RemoteCache> placed = Collections.newSetFromMap(new IdentityHashMap<>()); // guarded by this
    private final SequencedStream<AttendRequest, AttendResponse> stream;

    AttentionEndpoint(String path, WorkerAnnouncement announcement) {
        this.path = path;
        this.announcement = announcement;
        // A long prompt chunk may compute for many seconds: pings wait a minute without reads (the
        // attention deadline catches a stuck worker first).
        this.channel = SequencedStream.channelTo(announcement.getAddress(), Duration.ofSeconds(60));
        // A stream that breaks takes its caches on the worker with it: a new epoch.
        this.stream = new SequencedStream<>(toString(), o -> AttentionServiceGrpc.newStub(channel).attend(o),
                AttendResponse::getSequence, () -> {}, () -> {}, this::newEpoch);
    }

    String path() {
        return path;
    }

    WorkerAnnouncement announcement() {
        return announcement;
    }

    @Override
    public String toString() {
        return announcement.getWorkerId() + "@" + announcement.getAddress();
    }

    /** May take messages: registered, and not failed within its backoff. */
    boolean isLive(long nowNanos) {
        return !closed && nowNanos - deadUntilNanos >= 0;
    }

    /** May take new sequences: live, and it has not refused one for lack of room lately. */
    boolean hasRoom(long nowNanos) {
        return isLive(nowNanos) && nowNanos - fullUntilNanos >= 0;
    }

    /** It refused new sequences: offer it none for {@code backoffNanos} (or until one of ours ends). */
    void markFull(long backoffNanos) {
        fullUntilNanos = System.nanoTime() + backoffNanos;
    }

    /** Its caches are gone (stream broke, worker dead or gone): a new epoch, nothing placed. */
    private synchronized void newEpoch() {
        epoch++;
        placed.clear();
        keeps.clear(); // the stream's blocks went with it
        drops.clear();
        cancelled.clear();
    }

    /** Changes when the worker's caches and prefix blocks are lost (see {@link #newEpoch}). */
    synchronized long epoch() {
        return epoch;
    }

    /** Bytes of prefix blocks the worker keeps for one coordinator (0: no prefix caching there). */
    long prefixCacheBytes() {
        return announcement.getPrefixCacheBytes();
    }

    /**
     * The next message has the worker keep blocks of a cache placed here (in {@code epoch}: queued for
     * an earlier one, it is dropped, as the worker's blocks were).
     */
    synchronized void keep(long epoch, PrefixKeep keep) {
        if (epoch == this.epoch) {
            keeps.add(keep);
        }
    }

    /**
     * The next message has the worker drop a prefix block of {@code epoch}; one whose keep is still
     * queued is left out of it instead, since the worker drops before it keeps.
     */
    synchronized void drop(long epoch, long block) {
        if (epoch != this.epoch) {
            return;
        }
        if (keeps.stream().anyMatch(k -> k.getBlockIdsList().contains(block))) {
            cancelled.add(block);
        } else {
            drops.add(block);
        }
    }

    /** The queued keeps without their cancelled blocks: each split into runs of blocks still wanted. */
    private List<PrefixKeep> keepsToSend() {
        if (cancelled.isEmpty()) {
            return keeps;
        }
        List<PrefixKeep> out = new ArrayList<>();
        for (PrefixKeep k : keeps) {
            PrefixKeep.Builder run = null;
            for (int i = 0; i < k.getBlockIdsCount(); i++) {
                long id = k.getBlockIds(i);
                if (cancelled.contains(id)) {
                    if (run != null) {
                        out.add(run.build());
                    }
                    run = null;
                    continue;
                }
                if (run == null) {
                    run = k.toBuilder().clearBlockIds().setStart(k.getStart() + i * k.getBlockPositions());
                }
                run.addBlockIds(id);
            }
            if (run != null) {
                out.add(run.build());
            }
        }
        return out;
    }

    synchronized int placed() {
        return placed.size();
    }

    /**
     * KV cache bytes the worker has left by this coordinator's count (its announced budget less what
     * our sequences there may come to hold: each its prompt + max tokens, or what it reserves if
     * more, less the pages it shares with kept blocks; other coordinators' are unknown here):
     * Long.MAX_VALUE when it announces no budget.
     */
    synchronized long freeBytes(long bytesPerPosition) {
        return left(bytesPerPosition, RemoteCache::expectedCapacity);
    }

    /**
     * KV cache bytes the worker has left now by this coordinator's count: its budget less what our
     * sequences there reserve beside the pages they share with kept blocks (Long.MAX_VALUE when it
     * announces no budget).
     */
    synchronized long roomBytes(long bytesPerPosition) {
        return left(bytesPerPosition, RemoteCache::capacity);
    }

    private long left(long bytesPerPosition, java.util.function.ToIntFunction<RemoteCache> positions) {
        long budget = announcement.getKvCacheBytes();
        if (budget <= 0) {
            return Long.MAX_VALUE;
        }
        long held = 0;
        for (RemoteCache c : placed) {
            held += positions.applyAsInt(c) - c.keptPositions(); // pages shared with kept blocks: the prefix budget's
        }
        return budget - held * bytesPerPosition;
    }

    /** Its announced KV budget: what the scheduler keeps our sequences here within. */
    @Override
    public long kvBudgetBytes() {
        long budget = announcement.getKvCacheBytes();
        return budget > 0 ? budget : Long.MAX_VALUE;
    }

    /** Sequences the worker holds at most (its announced capacity; 0 = no limit). */
    int capacity() {
        return announcement.getCapacity();
    }

    /** Places {@code cache} here if the worker has room; false when it is full. */
    synchronized boolean place(RemoteCache cache) {
        if (capacity() > 0 && placed.size() >= capacity()) {
            return false;
        }
        placed.add(cache);
        cache.endpoint = this;
        cache.epoch = epoch;
        return true;
    }

    /**
     * The worker refused {@code cache} (it had no room): it is not placed here. Should the worker hold
     * it all the same (created by an earlier try of the same step), the next message frees it.
     */
    synchronized void unplace(RemoteCache cache) {
        if (cache.endpoint == this && cache.epoch == epoch && placed.remove(cache)) {
            released.add(cache.id);
        }
        cache.endpoint = null;
    }

    /** Whether the worker still holds {@code cache}: no failure since it was placed. */
    synchronized boolean holds(RemoteCache cache) {
        return !closed && cache.epoch == epoch;
    }

    /** The sequence is over: frees its place and, asynchronously, its cache on the worker. */
    void release(RemoteCache cache) {
        synchronized (this) {
            if (closed || cache.epoch != epoch || !placed.remove(cache)) {
                return; // gone with a failed incarnation
            }
        }
        fullUntilNanos = 0; // a place is free again
        boolean keeping;
        synchronized (this) {
            released.add(cache.id); // freed ahead of the next message, in order with it
            // Blocks still to be kept from it are copied by the next message, before it is freed; a
            // Release call could overtake that message, so the next message frees it.
            keeping = keeps.stream().anyMatch(k -> k.getCacheId() == cache.id);
        }
        if (keeping) {
            return;
        }
        AttentionServiceGrpc.newStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                .release(ReleaseRequest.newBuilder().addCacheIds(cache.id).build(), new StreamObserver<>() {
                    @Override
                    public void onNext(ReleaseResponse value) {}

                    @Override
                    public void onError(Throwable t) {
                        log.debug("release of cache {} on {} failed: {}", cache.id, AttentionEndpoint.this, t.toString());
                    }

                    @Override
                    public void onCompleted() {}
                });
    }

    /** The worker failed: its caches are lost, it is skipped for {@code backoffNanos}, its stream ends. */
    void markDead(String reason, long backoffNanos) {
        deadUntilNanos = System.nanoTime() + backoffNanos;
        log.warn("attention worker {} failed ({}); its {} sequence(s) are lost", this, reason, placed());
        newEpoch();
        channel.resetConnectBackoff();
        stream.fail(Status.UNAVAILABLE.withDescription("attention worker " + this + " failed: " + reason));
    }

    /**
     * Sends one message on the Attend stream; completes with its response or the stream's failure. It
     * carries the prefix blocks to drop and to keep and the caches released since the last message, which
     * the worker handles first, in that order.
     */
    CompletableFuture<AttendResponse> send(AttendRequest.Builder request) {
        synchronized (this) {
            drainPrefixBlocks(request);
            for (Long id; (id = released.poll()) != null; ) {
                request.addReleasedCacheIds(id);
            }
        }
        return stream.send(seq -> request.setSequence(seq).build());
    }

    /** Moves the queued prefix blocks to drop and to keep into {@code request}. */
    synchronized void drainPrefixBlocks(AttendRequest.Builder request) {
        request.addAllDroppedPrefixBlocks(drops).addAllPrefixKeeps(keepsToSend());
        keeps.clear();
        drops.clear();
        cancelled.clear();
    }

    @Override
    public void close() {
        synchronized (this) {
            closed = true;
            newEpoch();
        }
        stream.close(Status.UNAVAILABLE.withDescription("attention worker " + this + " left the cluster"));
        channel.shutdownNow();
    }
}
