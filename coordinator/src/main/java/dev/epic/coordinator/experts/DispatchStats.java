package dev.epic.coordinator.experts;

import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.util.concurrent.TimeUnit;

/**
 * Expert-parallel traffic of one RemoteExperts: dispatch+combine latency per MoE-layer call and
 * bytes on the wire, as Micrometer meters (for /metrics) and as a plain {@link Snapshot} (for
 * {@code epic bench}).
 */
public final class DispatchStats {
    /** Totals since start; mean latency = layerNanos / layerCalls. */
    public record Snapshot(long layerCalls, long layerNanos, long maxLayerNanos, long messages, long bytesSent,
            long bytesReceived, long rows, long retries, long failures, long workerComputeNanos) {
        public double meanLayerMicros() {
            return layerCalls == 0 ? 0 : layerNanos / 1e3 / layerCalls;
        }

        public Snapshot minus(Snapshot o) {
            return new Snapshot(layerCalls - o.layerCalls, layerNanos - o.layerNanos, maxLayerNanos, messages - o.messages,
                    bytesSent - o.bytesSent, bytesReceived - o.bytesReceived, rows - o.rows, retries - o.retries,
                    failures - o.failures, workerComputeNanos - o.workerComputeNanos);
        }
    }

    private final Timer layer;
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

    DispatchStats(MeterRegistry registry) {
        layer = Timer.builder("epic.experts.layer").description("dispatch + remote compute + combine of one MoE layer")
                .register(registry);
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

    synchronized void layer(long elapsedNanos) {
        calls++;
        nanos += elapsedNanos;
        maxNanos = Math.max(maxNanos, elapsedNanos);
        layer.record(elapsedNanos, TimeUnit.NANOSECONDS);
    }

    public synchronized Snapshot snapshot() {
        return new Snapshot(calls, nanos, maxNanos, messages, bytesSent, bytesReceived, rows, retries, failures,
                workerCompute);
    }
}
