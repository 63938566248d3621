package dev.epic.coordinator.api;

import com.google.protobuf.ByteString;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.attention.RemoteAttention;
import dev.epic.coordinator.experts.DispatchStats;
import dev.epic.coordinator.scheduler.Scheduler;
import dev.epic.coordinator.scheduler.StepStats;
import dev.epic.model.bench.ProcessStats;
import dev.epic.proto.LatencyHistogram;
import dev.epic.proto.StatsResponse;
import java.nio.ByteBuffer;
import java.util.function.BooleanSupplier;
import org.HdrHistogram.Histogram;

/** Builds the Stats answer: cumulative scheduler and dispatch counters, histograms, process memory. */
final class StatsReport {
    private final Scheduler scheduler;
    private final ExpertBackend experts;
    private final RemoteAttention attention; // null: attention in this process
    private final long startNanos = System.nanoTime();
    private final BooleanSupplier warmingUp;

    StatsReport(Scheduler scheduler, ExpertBackend experts, RemoteAttention attention, BooleanSupplier warmingUp) {
        this.warmingUp = warmingUp;
        this.scheduler = scheduler;
        this.experts = experts;
        this.attention = attention;
    }

    StatsResponse build() {
        StepStats steps = scheduler.stepStats();
        StatsResponse.Builder r = StatsResponse.newBuilder()
                .setUptimeNanos(System.nanoTime() - startNanos)
                .setSteps(steps.steps())
                .setStepNanos(steps.stepNanos())
                .setDecodeRows(steps.decodeRows())
                .setPrefillRows(steps.prefillRows())
                .setRunning(scheduler.running())
                .setWaiting(scheduler.waiting())
                .setPreemptions(scheduler.preemptions())
                .setNumSpeculativeTokens(scheduler.options().speculation().tokens())
                .setSpeculativeMethod(scheduler.options().speculation().mtp() ? "mtp" : "ngram")
                .setSchedulingPolicy(scheduler.options().priorities() ? "priority" : "fcfs")
                .setTwoBatchOverlap(scheduler.twoBatchOverlap())
                .setWarmingUp(warmingUp.getAsBoolean())
                .setDraftTokens(scheduler.draftTokens())
                .setAcceptedDraftTokens(scheduler.acceptedDrafts())
                .setKvCacheBytes(scheduler.kvCacheBytes())
                .setKvCacheDtype(scheduler.kvCacheDtype().id())
                .setKvCacheBudgetBytes(scheduler.kvCacheBudget() == Long.MAX_VALUE ? 0 : scheduler.kvCacheBudget())
                .setMaxBatch(scheduler.options().maxBatch())
                .setMaxQueue(scheduler.options().maxQueue())
                .setPrefillBudget(scheduler.options().prefillBudget())
                .setRssMb(orElse(ProcessStats.residentMb(), 0))
                .setLoadAverage1M(orElse(ProcessStats.loadAverage(), -1))
                .setMissingExperts(experts.missingExperts());
        dev.epic.model.PrefixStore prefixes = scheduler.prefixCache();
        if (prefixes != null) {
            r.setPrefixCache(true).setPrefixCacheBytes(prefixes.storedBytes())
                    .setPrefixQueriedTokens(prefixes.queriedTokens()).setPrefixHitTokens(prefixes.hitTokens());
            if (prefixes instanceof dev.epic.coordinator.scheduler.PrefixCache p && p.disk() != null) {
                r.setPrefixDisk(true).setPrefixDiskBytes(p.disk().storedBytes()).setPrefixDiskHitTokens(p.diskHitTokens());
            }
        }
        experts.dispatchStats().ifPresent(d -> {
            // Totals as of the last step's end, so they cover the same steps as step_nanos; the
            // histograms are live (they may hold the layer calls of the step in progress), and so are
            // retries and failures: a step whose call failed never ends, and they matter most then.
            DispatchStats.Snapshot live = d.snapshot();
            DispatchStats.Snapshot s = steps.experts() != null ? steps.experts() : live;
            DispatchStats.Histograms h = d.histograms();
            r.setRemoteExperts(true)
                    .setMoeLayerCalls(s.layerCalls())
                    .setMoeLayerNanos(s.layerNanos())
                    .setWorkerComputeNanos(s.workerComputeNanos())
                    .setDispatchCombineNanos(s.dispatchCombineNanos())
                    .setMessages(s.messages())
                    .setBytesSent(s.bytesSent())
                    .setBytesReceived(s.bytesReceived())
                    .setRetries(live.retries())
                    .setFailures(live.failures())
                    .setMoeLayer(latency(h.layer(), s.layerNanos()))
                    .setDispatchCombine(latency(h.dispatchCombine(), s.dispatchCombineNanos()));
        });
        if (attention != null) {
            RemoteAttention.Stats a = attention.stats();
            r.setRemoteAttention(true)
                    .setAttentionLayerCalls(a.layerCalls())
                    .setAttentionLayerNanos(a.layerNanos())
                    .setAttentionWorkerComputeNanos(a.slowestComputeNanos())
                    .setAttentionSequencesLost(a.sequencesLost())
                    .setAttentionLive(attention.hasLiveWorker());
        }
        return r.build();
    }

    static LatencyHistogram latency(Histogram h, long totalNanos) {
        ByteBuffer buf = ByteBuffer.allocate(h.getNeededByteBufferCapacity());
        int n = h.encodeIntoCompressedByteBuffer(buf);
        long count = h.getTotalCount();
        return LatencyHistogram.newBuilder()
                .setCount(count)
                .setTotalNanos(totalNanos)
                .setP50Nanos(count == 0 ? 0 : h.getValueAtPercentile(50))
                .setP99Nanos(count == 0 ? 0 : h.getValueAtPercentile(99))
                .setMaxNanos(count == 0 ? 0 : h.getMaxValue())
                .setHdrHistogram(ByteString.copyFrom(buf.array(), 0, n))
                .build();
    }

    /** Where /proc is not readable: RSS 0, load -1 (as before; the proto has no "unknown"). */
    private static double orElse(double v, double unknown) {
        return Double.isNaN(v) ? unknown : v;
    }
}
