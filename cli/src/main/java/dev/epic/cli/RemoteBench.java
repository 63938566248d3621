package dev.epic.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.epic.cli.ClusterBenchmark.Decode;
import dev.epic.cli.ClusterBenchmark.Interval;
import dev.epic.cli.ClusterBenchmark.Result;
import dev.epic.kernels.Bandwidth;
import dev.epic.model.bench.ProcessStats;
import dev.epic.proto.WorkerAnnouncement;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.io.PrintWriter;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;

/**
 * {@code epic bench --target}: runs {@link ClusterBenchmark} against a coordinator and prints the
 * same table / JSON keys as the in-process bench, plus the dispatch + combine figures.
 *
 * <p>Memory bandwidth is measured in this (client) process after the run: it is the coordinator's
 * machine when the bench runs next to {@code epic local}. rss_mb is the coordinator's (from Stats);
 * workers_rss_mb sums the expert workers' when they run on this machine (null otherwise).
 */
final class RemoteBench {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final String target;
    private final boolean json;
    private final PrintWriter out;
    private final PrintWriter err;

    RemoteBench(String target, boolean json, PrintWriter out, PrintWriter err) {
        this.target = target;
        this.json = json;
        this.out = out;
        this.err = err;
    }

    int run(ClusterBenchmark.Options options) throws Exception {
        ManagedChannel channel;
        try {
            channel = Channels.open(target);
        } catch (IllegalArgumentException e) {
            return BenchCommand.fail(err, e.getMessage());
        }
        try {
            double loadBefore = ProcessStats.loadAverage();
            Result r = new ClusterBenchmark(channel).run(options);
            double bandwidth = Bandwidth.measureGBs();
            double loadAfter = ProcessStats.loadAverage();
            Map<String, Object> m = asJson(r, options, bandwidth, loadBefore, loadAfter);
            if (json) {
                out.println(JSON.writeValueAsString(m));
            } else {
                printTable(r, m);
            }
            out.flush();
            return 0;
        } catch (IllegalArgumentException e) {
            return BenchCommand.fail(err, e.getMessage());
        } catch (StatusRuntimeException e) {
            return fail(target + ": " + dev.epic.transport.StatusText.of(e.getStatus()));
        } catch (IllegalStateException e) {
            return fail(target + ": " + e.getMessage());
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
        }
    }

    private int fail(String message) {
        err.println("epic bench: " + message);
        err.flush();
        return 1;
    }

    private Map<String, Object> asJson(Result r, ClusterBenchmark.Options o, double bandwidth, double loadBefore,
            double loadAfter) {
        long bytes = r.info().getWeightBytesPerToken();
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("target", target);
        m.put("model", r.info().getFingerprint().getName());
        m.put("expert_workers", r.info().getExpertWorkersCount());
        m.put("prefill_tok_s", r.prefillTokS());
        List<Map<String, Object>> decode = new ArrayList<>();
        long dcNanos = 0;
        long stepNanos = 0;
        for (Decode d : r.decode()) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("batch", d.batch());
            e.put("tok_s", d.tokS());
            e.put("itl_p50_ms", num(d.itlP50Ms()));
            e.put("itl_p99_ms", num(d.itlP99Ms()));
            e.put("tokens", d.tokens());
            putStats(e, d.stats());
            decode.add(e);
            dcNanos += d.stats().dispatchCombineNanos();
            stepNanos += d.stats().stepNanos();
        }
        m.put("decode", decode);
        m.put("ttft_ms", r.ttftMs());
        Map<String, Object> prefill = new LinkedHashMap<>();
        putStats(prefill, r.prefill());
        m.put("prefill", prefill);
        m.put("rss_mb", r.last().getRssMb());
        m.put("rss_of", "coordinator process");
        List<WorkerAnnouncement> workers = new ArrayList<>(r.info().getExpertWorkersList());
        workers.addAll(r.info().getAttentionWorkersList()); // expert and attention workers together
        m.put("workers_rss_mb", workersRssMb(workers));
        m.put("bytes_per_token", bytes);
        m.put("bandwidth_gb_s", bandwidth);
        m.put("bandwidth_measured_by", "the bench client process, after the run");
        double batch1 = r.decode().stream().filter(d -> d.batch() == 1).mapToDouble(Decode::tokS).findFirst()
                .orElse(Double.NaN);
        double roofline = bytes > 0 ? bandwidth * 1e9 / bytes : Double.NaN;
        m.put("roofline_tok_s", num(roofline));
        m.put("roofline_fraction", num(batch1 / roofline));
        boolean remote = r.last().getRemoteExperts();
        m.put("dispatch_combine_share", remote && stepNanos > 0 ? num((double) dcNanos / stepNanos) : null);
        m.put("prompt_len", o.promptLen());
        m.put("gen", o.gen());
        m.put("coordinator_max_batch", r.last().getMaxBatch());
        m.put("coordinator_prefill_budget", r.last().getPrefillBudget());
        m.put("kv_cache_dtype", r.last().getKvCacheDtype().isEmpty() ? "fp32" : r.last().getKvCacheDtype());
        m.put("two_batch_overlap", r.last().getTwoBatchOverlap());
        List<Double> load = new ArrayList<>();
        load.add(num(loadBefore));
        load.add(num(loadAfter));
        m.put("load_avg_1m", load);
        return m;
    }

    /** The step and expert-dispatch figures of one measured interval (dispatch keys null without remote experts). */
    private static void putStats(Map<String, Object> e, Interval s) {
        e.put("steps", s.steps());
        e.put("rows_per_step", num(s.rowsPerStep()));
        e.put("step_ms", num(s.stepMs()));
        boolean remote = s.remoteExperts() && s.layerCalls() > 0;
        e.put("moe_layer_calls", s.layerCalls());
        e.put("dispatch_combine_share", remote ? num(s.dispatchCombineShare()) : null);
        e.put("dispatch_combine_p50_us", remote ? num(Interval.percentileMicros(s.dispatchCombine(), 50)) : null);
        e.put("dispatch_combine_p99_us", remote ? num(Interval.percentileMicros(s.dispatchCombine(), 99)) : null);
        e.put("layer_p50_us", remote ? num(Interval.percentileMicros(s.layer(), 50)) : null);
        e.put("layer_p99_us", remote ? num(Interval.percentileMicros(s.layer(), 99)) : null);
        // Step time = coordinator compute + waiting on the slowest worker's compute + dispatch/combine.
        e.put("remote_compute_share", remote && s.stepNanos() > 0
                ? num((double) (s.layerNanos() - s.dispatchCombineNanos()) / s.stepNanos()) : null);
        // All workers' compute over step time: above 1 when workers compute in parallel.
        e.put("worker_compute_sum_share", remote && s.stepNanos() > 0
                ? num((double) s.workerComputeNanos() / s.stepNanos()) : null);
        // Attention workers: their layer calls' share of step time, and the slowest worker's compute in it.
        e.put("attention_share", s.remoteAttention() ? num(s.attentionShare()) : null);
        e.put("attention_compute_share", s.remoteAttention() && s.stepNanos() > 0
                ? num((double) s.attentionComputeNanos() / s.stepNanos()) : null);
    }

    private void printTable(Result r, Map<String, Object> m) {
        out.printf("target %s (%s), %d expert workers, %d attention workers; coordinator max-batch %d, prefill budget %d, "
                + "%s KV cache%s%n", target, m.get("model"), r.info().getExpertWorkersCount(),
                r.info().getAttentionWorkersCount(), r.last().getMaxBatch(), r.last().getPrefillBudget(),
                m.get("kv_cache_dtype"), r.last().getTwoBatchOverlap() ? ", two-batch overlap" : "");
        out.printf("prefill %s tokens: %.1f tok/s, TTFT %.1f ms%s%n", m.get("prompt_len"), r.prefillTokS(), r.ttftMs(),
                r.prefill().remoteExperts() ? String.format(", dispatch+combine %.1f%% of step time",
                        100 * r.prefill().dispatchCombineShare()) : "");
        out.printf("%6s %10s %11s %11s %9s %9s %11s %11s %10s %7s%n", "batch", "tok/s", "ITL p50 ms", "ITL p99 ms",
                "step ms", "d+c %", "d+c p50 us", "d+c p99 us", "layer p50", "attn %");
        for (Decode d : r.decode()) {
            Interval s = d.stats();
            out.printf("%6d %10.1f %11.2f %11.2f %9.2f %9.1f %11.1f %11.1f %10.1f %7s%n", d.batch(), d.tokS(),
                    d.itlP50Ms(), d.itlP99Ms(), s.stepMs(), 100 * s.dispatchCombineShare(),
                    Interval.percentileMicros(s.dispatchCombine(), 50), Interval.percentileMicros(s.dispatchCombine(), 99),
                    Interval.percentileMicros(s.layer(), 50),
                    s.remoteAttention() ? String.format("%.1f", 100 * s.attentionShare()) : "-");
        }
        out.printf("weights read per token %.1f MB, bandwidth %.1f GB/s (this machine) -> roofline %s tok/s; "
                        + "batch-1 decode at %s%n", r.info().getWeightBytesPerToken() / 1e6, m.get("bandwidth_gb_s"),
                fmt(m.get("roofline_tok_s"), 1), fmt(m.get("roofline_fraction"), 3));
        out.printf("resident memory: coordinator %.0f MB, workers %s MB; 1-minute load average %s%n",
                r.last().getRssMb(), fmt(m.get("workers_rss_mb"), 0), m.get("load_avg_1m"));
    }

    private static String fmt(Object v, int digits) {
        return v instanceof Double d ? String.format("%." + digits + "f", d) : String.valueOf(v);
    }

    /** JSON has no NaN: unknown numbers are null. */
    private static Double num(double v) {
        return Double.isFinite(v) ? v : null;
    }

    /** Sum of the workers' VmRSS when every worker is a process on this machine; null otherwise. */
    static Double workersRssMb(List<WorkerAnnouncement> workers) {
        if (workers.isEmpty()) {
            return null;
        }
        double sum = 0;
        for (WorkerAnnouncement w : workers) {
            String host = w.getAddress().substring(0, Math.max(0, w.getAddress().lastIndexOf(':')));
            if (w.getPid() <= 0 || !(host.startsWith("127.") || host.equals("localhost") || host.equals("[::1]"))) {
                return null;
            }
            double mb = ProcessStats.residentMb(w.getPid());
            if (Double.isNaN(mb)) {
                return null;
            }
            sum += mb;
        }
        return sum;
    }
}
