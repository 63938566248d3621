package dev.epic.coordinator.attention;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.attention.ExternalAttention;
import dev.epic.model.layers.SequenceRows;
import dev.epic.proto.AttendRequest;
import dev.epic.proto.AttendResponse;
import dev.epic.proto.HiddenEncoding;
import dev.epic.proto.SequenceSegment;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.HiddenCodec;
import dev.epic.transport.Protocol;
import io.grpc.Status;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.concurrent.atomic.AtomicLong;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import org.apache.curator.framework.CuratorFramework;

/**
 * Data-parallel attention on attention workers (DeepSeek's "DP attention"): every sequence's MLA
 * and latent KV cache live on one worker, chosen at its first step (the live worker with the most
 * KV budget left by this coordinator's count, each sequence counted at the most it may reach, then
 * the fewest sequences). The scheduler reserves
 * each cache's positions ahead, as it does for caches in its own heap; the reservation goes to the
 * worker with the cache's next layer-0 message, and the workers' announced budgets added up are the
 * scheduler's KV budget ({@link #kvCacheBudget()}), so it admits and preempts before a worker has to
 * refuse. Per layer call, the rows of each worker's sequences go to it in
 * ONE message on its long-lived stream, all workers in parallel, and the answers are put back in
 * row order. The fp32 wire and the same MLA code make the result bit for bit the in-process one.
 *
 * <p>A worker that fails or misses the deadline takes its sequences' caches with it: sequences that
 * had committed positions there fail with UNAVAILABLE, within one deadline; sequences still on
 * their first chunk are placed on another worker. A worker without room in its KV budget refuses
 * new sequences (placed elsewhere, or reported as without room when none takes them) and the growth
 * of sequences it holds (reported with the step's other sequences on that worker, so that the
 * scheduler can preempt some of them). Either way the call throws {@link AttentionUnavailableException},
 * and the step runs again for every sequence that goes on. Calls are serialised.
 */
public final class RemoteAttention implements ExternalAttention, AutoCloseable {
    /**
     * @param deadline    how long one worker may take for one layer message before it is presumed dead
     *                    (long prompts' chunks take longest)
     * @param deadBackoff how long a failed worker takes no new sequences
     * @param weights     the weight format workers must announce (the coordinator's --weights); null: any
     * @param kvCacheDtype how workers' caches must store positions (the coordinator's --kv-cache-dtype)
     * @param mtpLayer    whether the caches hold the MTP layer too, whose attention the workers then run
     *                    (drafting with it: --speculative-method mtp)
     */
    public record Options(Duration deadline, Duration deadBackoff, String weights, KvCacheDtype kvCacheDtype,
            boolean mtpLayer) {
        public static Options defaults() {
            return new Options(Duration.ofSeconds(30), Duration.ofSeconds(1), null, KvCacheDtype.FP32, false);
        }

        public Options withDeadline(Duration d) {
            return new Options(d, deadBackoff, weights, kvCacheDtype, mtpLayer);
        }

        public Options withDeadBackoff(Duration d) {
            return new Options(deadline, d, weights, kvCacheDtype, mtpLayer);
        }

        /** Workers whose attention weights are in another format are refused: a sequence's logits must
         *  not depend on which worker holds it. */
        public Options withWeights(String format) {
            return new Options(deadline, deadBackoff, format, kvCacheDtype, mtpLayer);
        }

        /** Likewise workers whose caches store positions in another dtype. */
        public Options withKvCacheDtype(KvCacheDtype dtype) {
            return new Options(deadline, deadBackoff, weights, dtype, mtpLayer);
        }

        /**
         * Caches with the MTP layer as one more layer, for drafting with it ({@link #holdsMtpLayer()}):
         * workers that do not run its attention are refused.
         */
        public Options withMtpLayer(boolean mtp) {
            return new Options(deadline, deadBackoff, weights, kvCacheDtype, mtp);
        }
    }

    /** A sequence's first chunk moves to another worker at most this often before it fails. */
    static final int MAX_MOVES = 2;

    private final AttentionDirectory directory;
    private final CheckpointFingerprint fingerprint;
    private final int hidden;
    private final int layers;
    /** Layers a cache holds: the decoder's, and the MTP layer's when drafting with it. */
    private final int cacheLayers;
    private final ModelConfig config;
    private final long bytesPerPosition;
    private final Options options;
    /** Cache ids: a random base per coordinator, so coordinators sharing workers never collide. */
    private final AtomicLong nextId = new AtomicLong(new SecureRandom().nextLong() & 0x7fff_ffff_0000_0000L);
    private volatile Stats stats = new Stats(0, 0, 0, 0);
    /** Rows of one worker, gathered for its request or decoded from its answer (calls are serialised). */
    private float[] scratch = new float[0];
    private final Timer layerTimer;
    private final Counter lostCounter;

    /**
     * Totals since start.
     *
     * @param slowestComputeNanos sum over layer calls of the slowest worker's reported compute time
     * @param sequencesLost       sequences failed because their worker failed (or none was live); those
     *                            without room are the scheduler's to preempt or end
     */
    public record Stats(long layerCalls, long layerNanos, long slowestComputeNanos, long sequencesLost) {}

    private RemoteAttention(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint, ModelConfig config,
            Options options, MeterRegistry registry) {
        MeterRegistry r = registry == null ? new SimpleMeterRegistry() : registry;
        this.layerTimer = Timer.builder("epic.attention.layer")
                .description("one layer's attention on the attention workers: send, compute, answer").register(r);
        this.lostCounter = Counter.builder("epic.attention.sequences.lost")
                .description("sequences ended because their attention worker failed (or none was live)").register(r);
        Gauge.builder("epic.attention.workers", this, a -> a.directory.workers().size())
                .description("registered attention workers").register(r);
        this.fingerprint = fingerprint;
        this.hidden = config.hiddenSize();
        this.layers = config.numHiddenLayers();
        this.cacheLayers = layers + (options.mtpLayer() ? 1 : 0);
        this.config = config;
        this.bytesPerPosition = options.kvCacheDtype().bytesPerPosition(config, cacheLayers);
        this.options = options;
        this.directory = new AttentionDirectory(zk, cluster, fingerprint, options.weights(), options.kvCacheDtype(),
                options.mtpLayer());
    }

    /** Uses an existing, started Curator client (not closed by {@link #close()}); meters go nowhere. */
    public static RemoteAttention create(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint,
            ModelConfig config, Options options) {
        return create(zk, cluster, fingerprint, config, options, null);
    }

    /** As above, with its meters in {@code registry} (null: nowhere); e.g. on the expert side's client. */
    public static RemoteAttention create(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint,
            ModelConfig config, Options options, MeterRegistry registry) {
        return new RemoteAttention(zk, cluster, fingerprint, config, options, registry);
    }

    /** Blocks until at least {@code count} attention workers are registered; false on timeout. */
    public boolean awaitWorkers(int count, Duration timeout) throws InterruptedException {
        return directory.await(count, timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Announcements of the registered attention workers (for ModelInfo). */
    public List<WorkerAnnouncement> workers() {
        return directory.workers().stream().map(AttentionEndpoint::announcement).toList();
    }

    /** Registered attention workers refused (another model or protocol), with why. */
    public List<dev.epic.proto.RefusedWorker> refusedWorkers() {
        return directory.refused();
    }

    /**
     * The longest sequence every registered worker's KV budget holds, at {@code bytesPerPosition}
     * (Long.MAX_VALUE when none announces its budget): what a request's default max_tokens runs to.
     */
    public long maxSequencePositions(long bytesPerPosition) {
        return announcedPositions(bytesPerPosition).min().orElse(Long.MAX_VALUE);
    }

    /** The longest sequence some registered worker's KV budget holds (Long.MAX_VALUE when none announces one). */
    public long largestSequencePositions(long bytesPerPosition) {
        return announcedPositions(bytesPerPosition).max().orElse(Long.MAX_VALUE);
    }

    private java.util.stream.LongStream announcedPositions(long bytesPerPosition) {
        return directory.workers().stream().mapToLong(w -> w.announcement().getKvCacheBytes()).filter(b -> b > 0)
                .map(b -> b / bytesPerPosition);
    }

    /**
     * The live workers' announced KV budgets added up: what this coordinator's sequences may reserve
     * together (other coordinators sharing the workers are not counted; their workers refuse when
     * full). Long.MAX_VALUE when a live worker announces none, or none is live.
     */
    @Override
    public long kvCacheBudget() {
        long now = System.nanoTime();
        long total = 0;
        boolean any = false;
        for (AttentionEndpoint w : directory.workers()) {
            if (!w.isLive(now)) {
                continue;
            }
            long b = w.announcement().getKvCacheBytes();
            if (b <= 0) {
                return Long.MAX_VALUE;
            }
            total += b;
            any = true;
        }
        return any ? total : Long.MAX_VALUE;
    }

    /** The live workers that take new sequences and announce a KV budget: where a new cache may go now. */
    @Override
    public List<? extends dev.epic.model.KvPool> kvPools() {
        long now = System.nanoTime();
        return directory.workers().stream()
                .filter(w -> w.hasRoom(now) && w.kvBudgetBytes() != Long.MAX_VALUE).toList();
    }

    /** Whether a new sequence can be placed now: some worker is registered and not in its failure backoff. */
    public boolean hasLiveWorker() {
        long now = System.nanoTime();
        return directory.workers().stream().anyMatch(w -> w.isLive(now));
    }

    @Override
    public KvCache newCache() {
        return new RemoteCache(nextId.incrementAndGet(), options.kvCacheDtype());
    }

    @Override
    public KvCacheDtype kvCacheDtype() {
        return options.kvCacheDtype();
    }

    /** Whether its caches hold the MTP layer ({@link Options#withMtpLayer}), as layer num_hidden_layers. */
    @Override
    public boolean holdsMtpLayer() {
        return options.mtpLayer();
    }

    public Stats stats() {
        return stats;
    }

    /** Prefix caching on the attention workers that announce it, each keeping at most {@code bytes} for us. */
    @Override
    public dev.epic.model.PrefixStore prefixStore(long bytes) {
        return new RemotePrefixCaches(directory, config, cacheLayers, options.kvCacheDtype(), bytes);
    }

    @Override
    public synchronized void forward(int layer, float[] x, int rows, List<SequenceRows> sequences, float[] y) {
        long t0 = System.nanoTime();
        Map<AttentionEndpoint, List<SequenceRows>> groups = new LinkedHashMap<>();
        Map<KvCache, Status> lost = new HashMap<>();
        Map<KvCache, Status> noRoom = new HashMap<>();
        Map<KvCache, Set<KvCache>> sharing = new HashMap<>();
        Set<KvCache> restart = new HashSet<>();
        boolean rerun = false;
        long now = System.nanoTime();
        for (SequenceRows s : sequences) {
            if (!(s.cache() instanceof RemoteCache c)) {
                throw new IllegalArgumentException("a cache made outside this RemoteAttention: " + s.cache());
            }
            if (c.endpoint != null && !c.endpoint.holds(c) && c.prefixBlocks != null) {
                restart.add(c); // its prefix blocks went with the worker's failure
                continue;
            }
            if (c.endpoint != null && !c.endpoint.holds(c)) {
                Status gone = Status.UNAVAILABLE.withDescription("attention worker " + c.endpoint
                        + " failed and the sequence's KV cache was lost with it");
                if (!move(c)) {
                    lost.put(c, gone);
                    continue;
                }
                if (layer > 0) { // its first chunk starts again elsewhere
                    rerun = true;
                    continue;
                }
            }
            if (c.endpoint == null) {
                Status refusal = place(c, now);
                if (refusal != null) {
                    (refusal.getCode() == Status.Code.RESOURCE_EXHAUSTED ? noRoom : lost).put(c, refusal);
                    continue;
                }
            }
            groups.computeIfAbsent(c.endpoint, e -> new ArrayList<>()).add(s);
        }
        if (!lost.isEmpty() || !noRoom.isEmpty() || !restart.isEmpty() || rerun) {
            throw unavailable(lost, noRoom, sharing, restart, 0, 0); // before sending: no cache is half-written
        }
        List<AttentionEndpoint> targets = new ArrayList<>(groups.keySet());
        List<CompletableFuture<AttendResponse>> futures = new ArrayList<>(targets.size());
        for (AttentionEndpoint w : targets) {
            futures.add(w.send(request(layer, x, groups.get(w))));
        }
        long deadline = System.nanoTime() + options.deadline().toNanos();
        long slowest = 0;
        for (int i = 0; i < targets.size(); i++) {
            AttentionEndpoint w = targets.get(i);
            List<SequenceRows> group = groups.get(w);
            try {
                AttendResponse r = futures.get(i).get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                if (r.getRefusedCacheIdsCount() > 0 || !r.getRefusal().isEmpty()) {
                    // The worker had no room (other coordinators' sequences count too): new sequences
                    // go to another worker; sequences it holds whose growth did not fit stay, and the
                    // scheduler may preempt some of the sequences here to make room. The others run
                    // the step again.
                    w.markFull(options.deadBackoff().toNanos());
                    Status full = Status.RESOURCE_EXHAUSTED.withDescription(r.getRefusal());
                    Set<KvCache> here = new HashSet<>(); // what preempting could free there: caches it holds
                    for (SequenceRows g : group) {
                        if (g.cache().length() > 0) {
                            here.add(g.cache());
                        }
                    }
                    // A refusal that names no sequence (a worker that ought not to send one) refuses them all.
                    Set<Long> refusedIds = new HashSet<>(r.getRefusedCacheIdsList());
                    for (SequenceRows g : group) {
                        RemoteCache c = (RemoteCache) g.cache();
                        if (!refusedIds.isEmpty() && !refusedIds.contains(c.id)) {
                            continue;
                        }
                        if (c.prefixBlocks != null) { // it starts again, recomputing its prefix elsewhere
                            w.unplace(c);
                            restart.add(c);
                        } else if (c.length() > 0) {
                            noRoom.put(c, full);
                            sharing.put(c, here);
                        } else {
                            w.unplace(c);
                            if (!move(c)) {
                                noRoom.put(c, full);
                            }
                        }
                    }
                    rerun = true;
                    continue;
                }
                scatter(r, group, y);
                slowest = Math.max(slowest, r.getComputeNanos());
            } catch (ExecutionException | TimeoutException | RuntimeException e) {
                Status s = e instanceof TimeoutException
                        ? Status.UNAVAILABLE.withDescription("attention worker " + w + " gave no answer for layer "
                                + layer + " within " + options.deadline().toMillis() + " ms")
                        : Status.fromThrowable(e instanceof ExecutionException ? e.getCause() : e);
                w.markDead(s.getCode() + ": " + s.getDescription(), options.deadBackoff().toNanos());
                Status gone = Status.UNAVAILABLE.withDescription("attention worker " + w + " failed: " + s.getCode()
                        + (s.getDescription() == null ? "" : ": " + s.getDescription())).withCause(s.getCause());
                for (SequenceRows g : group) {
                    RemoteCache c = (RemoteCache) g.cache();
                    if (c.prefixBlocks != null) {
                        restart.add(c);
                    } else if (!move(c)) { // a first chunk is placed elsewhere when the step runs again
                        lost.put(c, gone);
                    }
                }
                rerun = true;
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // fails the whole step: the engine is stopping
                throw Status.UNAVAILABLE.withDescription("interrupted while waiting for attention workers")
                        .asRuntimeException();
            }
        }
        long slowestCompute = slowest;
        if (!lost.isEmpty() || !noRoom.isEmpty() || !restart.isEmpty() || rerun) {
            throw unavailable(lost, noRoom, sharing, restart, System.nanoTime() - t0, slowestCompute);
        }
        if (layer == layers - 1) { // a whole step ran: the worker holds what the prefix blocks gave
            for (SequenceRows s : sequences) {
                ((RemoteCache) s.cache()).prefixBlocks = null;
            }
        }
        record(System.nanoTime() - t0, slowestCompute, 0);
    }

    /** Counts the call, and the exception that ends {@code lost} and has the step run again for the rest. */
    private AttentionUnavailableException unavailable(Map<KvCache, Status> lost, Map<KvCache, Status> noRoom,
            Map<KvCache, Set<KvCache>> sharing, Set<KvCache> restart, long nanos, long slowestCompute) {
        record(nanos, slowestCompute, lost.size());
        Status summary = !lost.isEmpty() ? lost.values().iterator().next()
                : !noRoom.isEmpty() ? noRoom.values().iterator().next()
                : Status.UNAVAILABLE.withDescription("an attention worker failed or was full; its new sequences are "
                        + "placed again");
        return new AttentionUnavailableException(summary, lost, noRoom, sharing, restart);
    }

    private void record(long nanos, long slowestCompute, int lost) {
        if (nanos > 0) {
            layerTimer.record(nanos, TimeUnit.NANOSECONDS);
        }
        lostCounter.increment(lost);
        Stats s = stats;
        stats = new Stats(s.layerCalls() + (nanos > 0 ? 1 : 0), s.layerNanos() + nanos,
                s.slowestComputeNanos() + slowestCompute, s.sequencesLost() + lost);
    }

    /**
     * Frees a sequence with nothing committed (still on its first chunk) from its worker so that it
     * is placed again; false when it has positions there, or has moved too often already.
     */
    private static boolean move(RemoteCache c) {
        if (c.length() > 0 || c.moves >= MAX_MOVES) {
            return false;
        }
        c.moves++;
        c.endpoint = null;
        return true;
    }

    /**
     * Places a new sequence on the live worker with the most KV budget left by our count (each
     * sequence at the most it may reach; then the fewest sequences); the refusal status if none can
     * take it.
     */
    private Status place(RemoteCache c, long now) {
        List<AttentionEndpoint> live = directory.workers().stream().filter(w -> w.isLive(now)).toList();
        if (live.isEmpty()) {
            return Status.UNAVAILABLE.withDescription("no live attention worker (" + directory.workers().size()
                    + " registered)");
        }
        List<AttentionEndpoint> byLoad = new ArrayList<>(live.stream().filter(w -> w.hasRoom(now)).toList());
        // First the workers with room now for what it reserves to join (elsewhere it would be refused,
        // or preempted again at once), then the most room for what it may reach, then the fewest sequences.
        long joining = (long) c.capacity() * bytesPerPosition;
        Map<AttentionEndpoint, Boolean> fitsNow = new HashMap<>();
        Map<AttentionEndpoint, Long> free = new HashMap<>();
        for (AttentionEndpoint w : byLoad) {
            fitsNow.put(w, w.roomBytes(bytesPerPosition) >= joining);
            free.put(w, w.freeBytes(bytesPerPosition));
        }
        byLoad.sort(java.util.Comparator.comparing((AttentionEndpoint w) -> !fitsNow.get(w))
                .thenComparingLong(w -> -free.get(w))
                .thenComparingInt(AttentionEndpoint::placed));
        for (AttentionEndpoint w : byLoad) {
            if (w.place(c)) {
                return null;
            }
        }
        return Status.RESOURCE_EXHAUSTED.withDescription("all " + live.size()
                + " attention worker(s) hold their maximum number of sequences");
    }

    private AttendRequest.Builder request(int layer, float[] x, List<SequenceRows> group) {
        int rows = 0;
        for (SequenceRows s : group) {
            rows += s.length();
        }
        float[] buf = scratch(rows);
        AttendRequest.Builder req = AttendRequest.newBuilder()
                .setProtocolVersion(Protocol.VERSION)
                .setFingerprint(fingerprint.sha256())
                .setLayer(layer)
                .setHidden(hidden);
        int r = 0;
        for (SequenceRows s : group) {
            System.arraycopy(x, s.firstRow() * hidden, buf, r * hidden, s.length() * hidden);
            r += s.length();
            RemoteCache c = (RemoteCache) s.cache();
            SequenceSegment.Builder segment = SequenceSegment.newBuilder()
                    .setCacheId(c.id)
                    .setStart(s.start())
                    .setLength(s.length())
                    .setReserve(layer == 0 ? c.capacity() : 0); // caches grow at layer 0
            if (layer == 0 && cacheLayers != layers) { // what a new cache holds: the MTP layer too
                segment.setCacheLayers(cacheLayers);
            }
            if (layer == 0 && c.prefixBlocks != null) {
                for (long b : c.prefixBlocks) {
                    segment.addPrefixBlocks(b);
                }
            }
            req.addSegments(segment);
        }
        return req.setHiddenStates(HiddenCodec.encode(HiddenEncoding.FP32, buf, rows, hidden).data());
    }

    private void scatter(AttendResponse r, List<SequenceRows> group, float[] y) {
        int rows = 0;
        for (SequenceRows s : group) {
            rows += s.length();
        }
        if (r.getRows() != rows || r.getOutput().size() != 4L * rows * hidden) {
            throw new IllegalStateException("answered " + r.getRows() + " rows (" + r.getOutput().size()
                    + " bytes) for " + rows + " rows of " + hidden);
        }
        float[] out = scratch(rows);
        HiddenCodec.decode(HiddenEncoding.FP32, r.getOutput(), com.google.protobuf.ByteString.EMPTY, rows, hidden, out);
        int o = 0;
        for (SequenceRows s : group) {
            System.arraycopy(out, o * hidden, y, s.firstRow() * hidden, s.length() * hidden);
            o += s.length();
        }
    }

    private float[] scratch(int rows) {
        if (scratch.length < rows * hidden) {
            scratch = new float[rows * hidden];
        }
        return scratch;
    }

    @Override
    public void close() {
        directory.close();
    }
}
