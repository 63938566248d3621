package dev.epic.coordinator.experts;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.RoutedExperts;
import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.HiddenEncoding;
import dev.epic.transport.HiddenCodec;
import dev.epic.transport.Protocol;
import dev.epic.transport.WorkerRegistration;
import dev.epic.transport.ZkLayout;
import io.grpc.Status;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.BitSet;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.function.Supplier;
import org.apache.curator.framework.CuratorFramework;

/**
 * Routed experts on remote expert workers (expert parallelism over gRPC). Per MoE layer call:
 * split the (row, expert) pairs by worker (each expert to one live replica), send ONE message per
 * worker on its long-lived stream, all in parallel, then add each worker's pre-reduced rows into
 * {@code out}. A worker that fails or misses the deadline is marked dead and its rows are re-sent
 * to another replica that has not failed in this call; with no replica left the call fails with
 * {@link ExpertsUnavailableException} (gRPC UNAVAILABLE) naming the experts, within one deadline per
 * replica — it never hangs.
 *
 * <p>One forward call at a time (calls are serialised); scratch buffers are reused across calls.
 */
public final class RemoteExperts implements RoutedExperts, AutoCloseable {
    /**
     * @param encoding      wire format of hidden states both ways. FP32 (default) is exact and
     *                      reproduces the fp32 reference; BF16 halves and FP8_E4M3 quarters the
     *                      bytes at the cost of ~1e-2 relative activation error.
     * @param deadline      how long one worker may take for one message before it is presumed dead
     * @param deadBackoff   how long a failed worker is skipped before it is tried again, or probed when
     *                      no request reaches it
     * @param rebalance     how often the expert placement is replanned from the load ({@link Rebalancer});
     *                      zero: never
     * @param weights       the weight format workers must announce (the coordinator's --weights); null: any
     */
    public record Options(HiddenEncoding encoding, Duration deadline, Duration deadBackoff, Duration rebalance,
            String weights) {
        public static Options defaults() {
            return new Options(HiddenEncoding.FP32, Duration.ofSeconds(10), Duration.ofSeconds(1), Duration.ZERO, null);
        }

        public Options withEncoding(HiddenEncoding e) {
            return new Options(e, deadline, deadBackoff, rebalance, weights);
        }

        public Options withDeadline(Duration d) {
            return new Options(encoding, d, deadBackoff, rebalance, weights);
        }

        public Options withRebalance(Duration period) {
            return new Options(encoding, deadline, deadBackoff, period, weights);
        }

        public Options withWeights(String format) {
            return new Options(encoding, deadline, deadBackoff, rebalance, format);
        }
    }

    private final CuratorFramework ownedZk;
    private final CuratorFramework zk;
    private final WorkerDirectory directory;
    private final Rebalancer rebalancer; // null: the placement is never replanned here
    /** Rows routed to each [layer][expert] since the rebalancer last read them (guarded by this). */
    private long[][] load = new long[0][];
    private final CheckpointFingerprint fingerprint;
    private final int hidden;
    private final Options options;
    private final DispatchStats stats;
    private int rotation;
    private final List<Batch> round = new ArrayList<>();
    private final List<CompletableFuture<ExpertResponse>> futures = new ArrayList<>();
    /** Per-call sum of the workers' answers, in double: exact, so independent of the expert grouping. */
    private double[] total = new double[0];
    private double[] answer = new double[0];
    /** The slowest worker's reported compute time in the current call (its critical path). */
    private long slowestCompute;
    /** Time spent in the caller's work run alongside the current layer call (left out of its stats). */
    private long ownNanos;

    private RemoteExperts(CuratorFramework ownedZk, CuratorFramework zk, String cluster,
            CheckpointFingerprint fingerprint, int experts, int hidden, Options options, MeterRegistry registry) {
        this.ownedZk = ownedZk;
        this.zk = zk;
        this.fingerprint = fingerprint;
        this.hidden = hidden;
        this.options = options;
        this.stats = new DispatchStats(registry);
        this.directory = new WorkerDirectory(zk, cluster, fingerprint, experts, options.deadBackoff(), options.deadline(),
                WorkerDirectory.LEAVE_GRACE, options.weights());
        try {
            this.rebalancer = options.rebalance().isPositive()
                    ? new Rebalancer(zk, cluster, this, options.rebalance(), registry) : null;
        } catch (RuntimeException e) {
            directory.close();
            throw e;
        }
    }

    /** The rows each [layer][expert] received since the last call (layers never called: zeros), and a fresh count. */
    synchronized long[][] takeLoad() {
        int experts = directory.table().experts();
        long[][] taken = new long[load.length][];
        for (int l = 0; l < load.length; l++) {
            taken[l] = load[l] != null ? load[l] : new long[experts];
        }
        load = new long[load.length][];
        return taken;
    }

    RoutingTable table() {
        return directory.table();
    }

    /**
     * Its ZooKeeper client, for the coordinator's other watchers (attention workers) to share one
     * session; it lives until this is closed.
     */
    public CuratorFramework zk() {
        return zk;
    }

    /** One rebalancing round now (tests; the rebalancer otherwise runs on its own schedule). */
    Eplb.Plan rebalanceNow() throws Exception {
        if (rebalancer == null) {
            throw new IllegalStateException("rebalancing is off (Options.rebalance is zero)");
        }
        rebalancer.awaitLeadership(Duration.ofSeconds(10));
        return rebalancer.rebalance();
    }

    /** Uses an existing, started Curator client (not closed by {@link #close()}). */
    public static RemoteExperts create(CuratorFramework zk, String cluster, CheckpointFingerprint fingerprint,
            int experts, int hidden, Options options, MeterRegistry registry) {
        return new RemoteExperts(null, zk, cluster, fingerprint, experts, hidden, options,
                registry == null ? new SimpleMeterRegistry() : registry);
    }

    /** Connects to ZooKeeper at {@code zkConnect} (host:port[,host:port]) and watches cluster's workers. */
    public static RemoteExperts connect(String zkConnect, String cluster, CheckpointFingerprint fingerprint,
            int experts, int hidden, Options options, MeterRegistry registry) throws InterruptedException {
        CuratorFramework zk = WorkerRegistration.connect(zkConnect, 15_000);
        return new RemoteExperts(zk, zk, cluster == null ? ZkLayout.DEFAULT_CLUSTER : cluster, fingerprint, experts,
                hidden, options, registry == null ? new SimpleMeterRegistry() : registry);
    }

    /**
     * The usual coordinator entry point: fingerprint and sizes from the checkpoint directory, workers
     * from ZooKeeper. Plug the result into the engine: {@code new Transformer(config, checkpoint, remote)}.
     */
    public static RemoteExperts forModel(String zkConnect, String cluster, Path modelDir, Options options,
            MeterRegistry registry) throws InterruptedException {
        ModelConfig config = ModelConfig.load(modelDir.resolve(ModelConfig.FILE_NAME));
        if (config.nRoutedExperts() == null) {
            throw new IllegalArgumentException(modelDir + " is a dense model: it has no routed experts to distribute");
        }
        return connect(zkConnect, cluster, CheckpointFingerprint.of(modelDir), config.nRoutedExperts(),
                config.hiddenSize(), options, registry);
    }

    /** Blocks until every expert has a live worker; false on timeout. */
    public boolean awaitCoverage(Duration timeout) throws InterruptedException {
        return directory.awaitCoverage(timeout.toNanos(), TimeUnit.NANOSECONDS);
    }

    /** Experts without a healthy worker (none registered, or all failed lately), as ranges ("" when covered). */
    public String missingExperts() {
        return directory.table().missing();
    }

    /** Ids of the workers in the routing table that count as down now (failed lately; probed until they answer). */
    public List<String> downWorkerIds() {
        return directory.table().workers().stream().filter(w -> !w.isHealthy())
                .map(w -> w.announcement().getWorkerId()).toList();
    }

    /** Registered workers refused (another model, protocol or weight format), with why. */
    public List<dev.epic.proto.RefusedWorker> refusedWorkers() {
        return directory.refused();
    }

    /** Live worker addresses. */
    public List<String> workers() {
        return directory.table().workers().stream().map(WorkerEndpoint::toString).toList();
    }

    /** Announcements of the registered workers of this model (for ModelInfo). */
    public List<dev.epic.proto.WorkerAnnouncement> workerAnnouncements() {
        return directory.table().workers().stream().map(WorkerEndpoint::announcement).toList();
    }

    public DispatchStats stats() {
        return stats;
    }

    @Override
    public void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out) {
        forward(layer, x, rows, expertIds, weights, k, out, null);
    }

    /**
     * Sends every worker its rows, runs {@code alongside} (may be null) while they compute, then waits
     * and combines. The layer's recorded time leaves out {@code alongside}: it is the time spent on
     * the experts, not on the caller's own work.
     */
    @Override
    public synchronized void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k,
            float[] out, Runnable alongside) {
        RoutingTable table = directory.table();
        if (load.length <= layer) {
            load = Arrays.copyOf(load, layer + 1);
        }
        if (load[layer] == null) {
            load[layer] = new long[table.experts()];
        }
        dispatch(layer, table, table.layer(layer), load[layer], x, rows, expertIds, weights, k, out, alongside);
    }

    /**
     * The MTP layer's routed experts: on the workers that announce the layer while they cover it, else
     * on {@code own} (see {@link MtpLayerExperts}).
     */
    @Override
    public RoutedExperts mtpLayer(int layer, Supplier<RoutedExperts> own) {
        return new MtpLayerExperts(this, layer, own);
    }

    /** Whether the workers announcing the MTP layer cover every expert now (see {@link RoutingTable#coversMtpLayer}). */
    boolean coversMtpLayer() {
        return directory.table().coversMtpLayer();
    }

    /**
     * {@link #forward} for the MTP layer, on the workers that announce it. Its rows are not counted in
     * the load the rebalancer plans from: redundant experts are placed in the decoder's layers only.
     */
    synchronized void forwardMtpLayer(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k,
            float[] out, Runnable alongside) {
        RoutingTable table = directory.table();
        dispatch(layer, table, table.mtpLayer(), null, x, rows, expertIds, weights, k, out, alongside);
    }

    /** One layer call through {@code replicas} (its expert -> workers table), counting rows in {@code layerLoad} (null: not). */
    private void dispatch(int layer, RoutingTable table, WorkerEndpoint[][] replicas, long[] layerLoad, float[] x,
            int rows, int[] expertIds, float[] weights, int k, float[] out, Runnable alongside) {
        long t0 = System.nanoTime();
        ownNanos = 0;
        if (total.length < rows * hidden) {
            total = new double[rows * hidden];
            answer = new double[rows * hidden];
        }
        Arrays.fill(total, 0, rows * hidden, 0.0);
        slowestCompute = 0;
        rotation++;
        round.clear();
        boolean exact = options.encoding() == HiddenEncoding.FP32;
        // First round: every pair to a replica; batches live in the endpoints' scratch.
        BitSet missing = null;
        for (int i = 0; i < rows; i++) {
            for (int j = 0; j < k; j++) {
                int e = expertIds[i * k + j];
                if (e < 0 || e >= table.experts()) {
                    throw new IllegalArgumentException("expert id " + e + " out of range [0, " + table.experts() + ")");
                }
                // On the exact wire, an expert's rows share out over its replicas, row by row and call
                // by call: which worker serves a pair does not change the result, since answers are
                // summed exactly. A lossy wire keeps each expert on one replica (e mod n), so its
                // rounding stays the same from call to call.
                if (layerLoad != null) {
                    layerLoad[e]++;
                }
                WorkerEndpoint w = RoutingTable.pick(replicas, e, exact ? rotation + i : 0, t0, Set.of());
                if (w == null) {
                    (missing == null ? missing = new BitSet() : missing).set(e);
                    continue;
                }
                Batch b = w.scratch;
                if (b.call != rotation) {
                    b.clear();
                    b.call = rotation;
                    round.add(b);
                }
                b.add(i, e, weights[i * k + j]);
            }
        }
        if (missing != null) {
            stats.failure();
            throw unavailable(layer, missing, table, null);
        }
        List<Batch> pending = new ArrayList<>(round);
        pending.sort(java.util.Comparator.comparing(batch -> batch.endpoint.path()));
        Throwable lastFailure = null;
        // A worker that failed in this call is not tried again in it, even once its backoff has passed
        // (a deadline is longer than the backoff): else two hung replicas would take turns forever,
        // holding the engine. So there are at most as many rounds as replicas.
        Set<WorkerEndpoint> failedHere = new HashSet<>();
        while (!pending.isEmpty()) {
            List<Batch> failed = sendAndCombine(layer, x, pending, alongside);
            alongside = null; // once, in the first round
            if (failed.isEmpty()) {
                break;
            }
            // Re-route the failed workers' pairs to other live replicas (fresh batches: rare path).
            long now = System.nanoTime();
            failed.forEach(f -> failedHere.add(f.endpoint));
            List<Batch> retry = new ArrayList<>();
            for (Batch f : failed) {
                for (int r = 0, p = 0; r < f.rows; r++) {
                    for (int c = 0; c < f.counts[r]; c++, p++) {
                        int e = f.ids[p];
                        WorkerEndpoint w = RoutingTable.pick(replicas, e, rotation, now, failedHere);
                        if (w == null) {
                            (missing == null ? missing = new BitSet() : missing).set(e);
                            continue;
                        }
                        Batch b = null;
                        for (Batch candidate : retry) {
                            if (candidate.endpoint == w) {
                                b = candidate;
                            }
                        }
                        if (b == null) {
                            retry.add(b = new Batch(w));
                        }
                        b.add(f.rowIndex[r], e, f.weights[p]);
                    }
                }
                lastFailure = f.failure;
            }
            if (missing != null) {
                stats.failure();
                throw unavailable(layer, missing, table, lastFailure);
            }
            retry.forEach(b -> stats.retry());
            pending = retry;
        }
        for (int i = 0; i < rows * hidden; i++) {
            out[i] = (float) total[i];
        }
        stats.layer(System.nanoTime() - t0 - ownNanos, slowestCompute);
    }

    /**
     * Sends every batch, runs {@code alongside} (if not null), waits (bounded), adds successful answers
     * into total; returns the failed batches.
     */
    private List<Batch> sendAndCombine(int layer, float[] x, List<Batch> batches, Runnable alongside) {
        futures.clear();
        for (Batch b : batches) {
            float[] buf = b.rowBuffer(hidden);
            for (int r = 0; r < b.rows; r++) {
                System.arraycopy(x, b.rowIndex[r] * hidden, buf, r * hidden, hidden);
            }
            HiddenCodec.Encoded enc = HiddenCodec.encode(options.encoding(), buf, b.rows, hidden);
            ExpertRequest.Builder req = ExpertRequest.newBuilder()
                    .setProtocolVersion(Protocol.VERSION)
                    .setFingerprint(fingerprint.sha256())
                    .setLayer(layer)
                    .setRows(b.rows)
                    .setHidden(hidden)
                    .setEncoding(options.encoding())
                    .setResponseEncoding(answerEncoding())
                    .setHiddenStates(enc.data())
                    .setScales(enc.scales());
            for (int r = 0; r < b.rows; r++) {
                req.addExpertCounts(b.counts[r]);
            }
            for (int p = 0; p < b.pairs; p++) {
                req.addExpertIds(b.ids[p]);
                req.addGateWeights(b.weights[p]);
            }
            stats.message(enc.data().size() + enc.scales().size() + 8L * b.pairs + 4L * b.rows, b.rows);
            futures.add(b.endpoint.send(req));
        }
        long deadline = System.nanoTime() + options.deadline().toNanos();
        if (alongside != null) {
            long t = System.nanoTime();
            alongside.run();
            ownNanos = System.nanoTime() - t;
            deadline += ownNanos; // the workers' deadline does not count the caller's own work
        }
        List<Batch> failed = List.of();
        for (int i = 0; i < batches.size(); i++) {
            Batch b = batches.get(i);
            try {
                ExpertResponse resp = futures.get(i).get(Math.max(0, deadline - System.nanoTime()), TimeUnit.NANOSECONDS);
                combine(b, resp);
            } catch (ExecutionException | TimeoutException | RuntimeException e) {
                Throwable cause = e instanceof ExecutionException ? e.getCause() : e;
                String why = e instanceof TimeoutException
                        ? "no answer within " + options.deadline().toMillis() + " ms"
                        : dev.epic.transport.StatusText.of(cause);
                b.failure = e instanceof TimeoutException
                        ? Status.DEADLINE_EXCEEDED.withDescription(why).asException() : cause;
                b.endpoint.markDead("layer " + layer + ": " + why, options.deadBackoff().toNanos());
                if (failed.isEmpty()) {
                    failed = new ArrayList<>();
                }
                failed.add(b);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new ExpertsUnavailableException("interrupted while waiting for expert workers", e);
            }
        }
        return failed;
    }

    /** How hidden states travel to the workers (--wire). */
    public HiddenEncoding encoding() {
        return options.encoding();
    }

    /**
     * Exact wire (FP32) asks for FP64 answers: workers' partial sums then add up exactly, so a row's
     * result is the same bit for bit whichever workers served its experts (replica choice, failover)
     * and equal to the in-process engine's. Lossy wires answer in their own encoding.
     */
    private HiddenEncoding answerEncoding() {
        return options.encoding() == HiddenEncoding.FP32 ? HiddenEncoding.FP64 : options.encoding();
    }

    private void combine(Batch b, ExpertResponse resp) {
        if (resp.getRows() != b.rows || resp.getHidden() != hidden) {
            throw new IllegalStateException("worker " + b.endpoint + " answered " + resp.getRows() + "x"
                    + resp.getHidden() + " for a " + b.rows + "x" + hidden + " request");
        }
        HiddenCodec.decodeSums(resp.getEncoding(), resp.getOutput(), resp.getScales(), b.rows, hidden, answer);
        for (int r = 0; r < b.rows; r++) {
            int o = b.rowIndex[r] * hidden;
            int yo = r * hidden;
            for (int c = 0; c < hidden; c++) {
                total[o + c] += answer[yo + c];
            }
        }
        stats.response(resp.getOutput().size() + resp.getScales().size(), resp.getComputeNanos());
        slowestCompute = Math.max(slowestCompute, resp.getComputeNanos());
    }

    private ExpertsUnavailableException unavailable(int layer, BitSet missing, RoutingTable table, Throwable cause) {
        String ids = dev.epic.transport.ExpertRanges.format(missing.stream().toArray());
        String msg = "no live expert worker for experts " + ids + " (layer " + layer + "; "
                + table.workers().size() + " worker(s) registered"
                + (cause == null ? "" : "; last failure: " + dev.epic.transport.StatusText.of(cause)) + ")";
        return new ExpertsUnavailableException(msg, cause);
    }

    @Override
    public void close() {
        if (rebalancer != null) {
            rebalancer.close();
        }
        directory.close();
        if (ownedZk != null) {
            ownedZk.close();
        }
    }
}
