package dev.epic.coordinator.experts;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.concurrent.TimeUnit;
import org.HdrHistogram.Histogram;

/**
 * Expert-parallel traffic of one RemoteExperts: latency per MoE-layer call, its dispatch+combine
 * part, and bytes on the wire, as Micrometer meters (for /metrics), as a plain {@link Snapshot} and
 * as latency histograms (for the Stats RPC and {@code epic bench --target}).
 *
 * <p>Dispatch+combine of one layer call = its wall time minus the slowest worker's reported
 * compute time in that call: what expert parallelism adds over computing the experts in place
 * (encode, transport both ways, decode, combine, waiting on the event loop).
 */
public final class DispatchStats {
    /**
     * Totals since start; mean latency = layerNanos / layerCalls.
     *
     * @param dispatchCombineNanos sum over layer calls of (wall - slowest worker's compute)
     */
    public record Snapshot(long layerCalls, long layerNanos, long maxLayerNanos, long messages, long bytesSent,
            long bytesReceived, long rows, long retries, long failures, long workerComputeNanos,
            long dispatchCombineNanos) {
        public double meanLayerMicros() {
            return layerCalls == 0 ? 0 : layerNanos / 1e3 / layerCalls;
        }

        public Snapshot minus(Snapshot o) {
            return new Snapshot(layerCalls - o.layerCalls, layerNanos - o.layerNanos, maxLayerNanos, messages - o.messages,
                    bytesSent - o.bytesSent, bytesReceived - o.bytesReceived, rows - o.rows, retries - o.retries,
                    failures - o.failures, workerComputeNanos - o.workerComputeNanos,
                    dispatchCombineNanos - o.dispatchCombineNanos);
        }
    }

    /** Copies of the latency distributions since start (nanoseconds). */
    public record Histograms(Histogram layer, Histogram dispatchCombine) {}

    /** 3 significant digits: percentiles within 0.1%; auto-resizing, so any latency fits. */
    private static final int DIGITS = 3;

    private final Timer layer;
    private final Timer dispatchCombineTimer;
    private final Histogram layerHistogram = new Histogram(DIGITS);
    private final Histogram dispatchCombineHistogram = new Histogram(DIGITS);
    private final Counter sent;
    private final Counter received;
    private final Counter messagesCounter;
    private final Counter retriesCounter;
    private final Counter failuresCounter;
    private long calls;
    private long nanos;
    private long maxNanos;
    private long messages;
    private long bytesSent;
    private long bytesReceived;
    private long rows;
    private long retries;
    private long failures;
    private long workerCompute;
    private long dispatchCombine;

    DispatchStats(MeterRegistry registry) {
        layer = Timer.builder("epic.experts.layer").description("dispatch + remote compute + combine of one MoE layer")
                .register(registry);
        dispatchCombineTimer = Timer.builder("epic.experts.dispatch.combine")
                .description("MoE layer wall time minus the slowest worker's compute time").register(registry);
        sent = Counter.builder("epic.experts.bytes.sent").baseUnit("bytes").register(registry);
        received = Counter.builder("epic.experts.bytes.received").baseUnit("bytes").register(registry);
        messagesCounter = Counter.builder("epic.experts.messages").register(registry);
        retriesCounter = Counter.builder("epic.experts.retries").description("worker batches re-sent to a replica")
                .register(registry);
        failuresCounter = Counter.builder("epic.experts.failures").description("layer calls failed UNAVAILABLE")
                .register(registry);
    }

    synchronized void message(long bytesOut, int batchRows) {
        messages++;
        bytesSent += bytesOut;
        rows += batchRows;
        messagesCounter.increment();
        sent.increment(bytesOut);
    }

    synchronized void response(long bytesIn, long computeNanos) {
        bytesReceived += bytesIn;
        workerCompute += computeNanos;
        received.increment(bytesIn);
    }

    synchronized void retry() {
        retries++;
        retriesCounter.increment();
    }

    synchronized void failure() {
        failures++;
        failuresCounter.increment();
    }

    /**
     * One MoE layer call took {@code elapsedNanos}; the slowest worker answering it reported
     * {@code slowestComputeNanos} of compute.
     */
    synchronized void layer(long elapsedNanos, long slowestComputeNanos) {
        long overhead = Math.max(0, elapsedNanos - slowestComputeNanos);
        calls++;
        nanos += elapsedNanos;
        dispatchCombine += overhead;
        maxNanos = Math.max(maxNanos, elapsedNanos);
        layerHistogram.recordValue(elapsedNanos);
        dispatchCombineHistogram.recordValue(overhead);
        layer.record(elapsedNanos, TimeUnit.NANOSECONDS);
        dispatchCombineTimer.record(overhead, TimeUnit.NANOSECONDS);
    }

    public synchronized Snapshot snapshot() {
        return new Snapshot(calls, nanos, maxNanos, messages, bytesSent, bytesReceived, rows, retries, failures,
                workerCompute, dispatchCombine);
    }

    /** Copies (cheap array copies under the lock; callers encode them outside it). */
    public synchronized Histograms histograms() {
        return new Histograms(layerHistogram.copy(), dispatchCombineHistogram.copy());
    }
}
