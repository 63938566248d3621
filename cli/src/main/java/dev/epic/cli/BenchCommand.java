package dev.epic.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import dev.epic.kernels.Parallel;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.Transformer;
import dev.epic.model.bench.EngineBenchmark;
import dev.epic.model.bench.EngineBenchmark.Decode;
import dev.epic.model.bench.EngineBenchmark.Options;
import dev.epic.model.bench.EngineBenchmark.Result;
import dev.epic.model.bench.ProcessStats;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.config.ConfigException;
import dev.epic.model.quant.WeightFormat;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Benchmarks the engine in this process ({@code --model}), or a running coordinator through its
 * gRPC API ({@code --target}): prefill, decode per batch size, decode against the memory roofline,
 * and through a cluster the share of step time spent in expert dispatch + combine.
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure prefill and decode speed of a model in this process (--model), or of a running "
                + "coordinator through its gRPC API (--target HOST:PORT, e.g. from epic local).")
public final class BenchCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "checkpoint directory (benchmark in this process)")
    Path model;

    @Option(names = "--target", paramLabel = "HOST:PORT",
            description = "a running coordinator (epic coordinator / epic local) to benchmark through its API")
    String target;

    @Option(names = "--batch", defaultValue = "1,8,32", split = ",", paramLabel = "N",
            description = "decode batch sizes (default 1,8,32)")
    List<Integer> batches;

    @Option(names = "--prompt-len", defaultValue = "512", paramLabel = "N", description = "prompt tokens (default 512)")
    int promptLen;

    @Option(names = "--gen", defaultValue = "64", paramLabel = "N", description = "decode steps per batch size (default 64)")
    int gen;

    /**
     * One 512-token chunk by default, like llama.cpp's pp512 (ubatch 512); the coordinator's scheduler
     * feeds prompts in chunks of its prefill budget (256 by default): --chunk 256 measures that.
     */
    @Option(names = "--chunk", defaultValue = "512", paramLabel = "N",
            description = "prefill chunk size in tokens (default 512; the scheduler's prefill budget is 256; --model only)")
    int chunk;

    @Option(names = "--drafts", split = ",", paramLabel = "K", description = "--model only: also time batch-1 "
            + "speculative decoding steps that check K drafted tokens (e.g. 2,4), and the tok/s they give with every "
            + "draft kept and with none")
    List<Integer> drafts = List.of();

    @Option(names = "--mtp", arity = "0..1", fallbackValue = "1", defaultValue = "0", paramLabel = "K",
            description = "--model only: also time batch-1 steps drafting K tokens (default 1) with the checkpoint's "
                    + "MTP layer: the check of the drafts and the MTP layer's K chained passes for the next")
    int mtp;

    @Option(names = "--weights", defaultValue = "auto", paramLabel = "auto|bf16|q8|q4",
            description = "linear weight format: as stored (auto), bf16, q8 or q4 (default auto; --model only)")
    String weights;

    @Mixin
    KvCacheFlags kvCache; // --model only: a --target coordinator stores as it was started

    @Option(names = "--warmup", defaultValue = "16", paramLabel = "N",
            description = "--target only: tokens decoded per stream at each batch size before measuring (default 16)")
    int warmup;

    @Option(names = "--warmup-seconds", defaultValue = "10", paramLabel = "S",
            description = "--target only: seconds of batch-1 decode first, so the JIT of the coordinator and of "
                    + "every worker has compiled the dispatch path (default 10; 0 = none)")
    double warmupSeconds;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "N", description = "prompt/token seed (default 0)")
    long seed;

    @Option(names = "--json", description = "print one JSON object instead of a table")
    boolean json;

    private double loadBefore = Double.NaN;
    private double loadAfter = Double.NaN;

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        if ((model == null) == (target == null)) {
            return fail(err, "give exactly one of --model DIR (this process) or --target HOST:PORT (a coordinator)");
        }
        if (target != null) {
            if (!drafts.isEmpty() || mtp != 0) {
                return fail(err, "--drafts and --mtp are for --model (a coordinator speculates as started: "
                        + "--num-speculative-tokens, --speculative-method)");
            }
            ClusterBenchmark.Options remote;
            try {
                remote = new ClusterBenchmark.Options(List.copyOf(batches), promptLen, gen, warmup, warmupSeconds,
                        seed);
            } catch (IllegalArgumentException e) {
                return fail(err, e.getMessage());
            }
            return new RemoteBench(target, json, spec.commandLine().getOut(), err).run(remote);
        }
        WeightFormat format;
        Options options;
        KvCacheDtype kvCacheDtype;
        try {
            format = WeightFormat.parse(weights);
            kvCacheDtype = kvCache.dtype();
            options = new Options(List.copyOf(batches), promptLen, gen, chunk, seed, List.copyOf(drafts), mtp);
            if (!Files.isDirectory(model)) {
                throw new IllegalArgumentException("model directory not found: " + model);
            }
        } catch (IllegalArgumentException e) {
            return fail(err, e.getMessage());
        }
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            String missing = dev.epic.model.layers.Mtp.missing(checkpoint.config());
            if (mtp > 0 && missing != null) {
                return fail(err, "--mtp: " + missing);
            }
            loadBefore = ProcessStats.loadAverage();
            long t0 = System.nanoTime();
            Transformer transformer = Transformer.load(checkpoint, format).kvCacheDtype(kvCacheDtype);
            double loadSeconds = (System.nanoTime() - t0) / 1e9;
            Result r = EngineBenchmark.run(transformer, options);
            loadAfter = ProcessStats.loadAverage();
            PrintWriter out = spec.commandLine().getOut();
            if (json) {
                out.println(JSON.writeValueAsString(asJson(r, format, loadSeconds)));
            } else {
                printTable(out, r, format, loadSeconds);
            }
            out.flush();
            return 0;
        } catch (IllegalArgumentException | CheckpointException | ConfigException e) {
            return fail(err, e.getMessage());
        }
    }

    private Map<String, Object> asJson(Result r, WeightFormat format, double loadSeconds) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("prefill_tok_s", r.prefillTokS());
        List<Map<String, Object>> decode = new ArrayList<>();
        for (Decode d : r.decode()) {
            Map<String, Object> e = new LinkedHashMap<>();
            e.put("batch", d.batch());
            e.put("tok_s", d.tokS());
            e.put("itl_p50_ms", d.itlP50Ms());
            e.put("itl_p99_ms", d.itlP99Ms());
            e.put("bytes_per_step", Math.round(d.bytesPerStep()));
            e.put("roofline_tok_s", r.rooflineTokS(d));
            e.put("roofline_fraction", d.tokS() / r.rooflineTokS(d));
            decode.add(e);
        }
        m.put("decode", decode);
        if (!r.verify().isEmpty()) {
            List<Map<String, Object>> speculative = new ArrayList<>();
            for (EngineBenchmark.Verify v : r.verify()) {
                Map<String, Object> e = new LinkedHashMap<>();
                e.put("drafts", v.drafts());
                e.put("method", v.mtp() ? "mtp" : "ngram");
                e.put("step_ms_p50", v.stepMsP50());
                e.put("step_ms_mean", v.stepMsMean());
                e.put("tok_s_all_kept", v.tokSAllKept());
                e.put("tok_s_none_kept", v.tokSNoneKept());
                speculative.add(e);
            }
            m.put("speculative", speculative);
        }
        m.put("ttft_ms", r.ttftMs());
        m.put("rss_mb", r.rssMb());
        m.put("bytes_per_token", r.bytesPerToken());
        m.put("bandwidth_gb_s", r.bandwidthGBs());
        m.put("roofline_fraction", r.rooflineFraction());
        m.put("roofline_tok_s", r.rooflineTokS());
        m.put("fma_peak_gflop_s", r.fmaGFlops());
        m.put("multiply_adds_per_token", r.multiplyAddsPerToken());
        m.put("compute_ceiling_tok_s", r.computeCeilingTokS());
        m.put("weights", format.id());
        m.put("kv_cache_dtype", kvCache.dtype().id());
        m.put("prompt_len", promptLen);
        m.put("gen", gen);
        m.put("threads", Parallel.threads());
        m.put("load_s", loadSeconds);
        m.put("load_avg_1m", List.of(loadBefore, loadAfter));
        return m;
    }

    private void printTable(PrintWriter out, Result r, WeightFormat format, double loadSeconds) {
        out.printf("model %s, weights %s, KV cache %s, %d threads, loaded in %.1f s%n", model, format.id(),
                kvCache.dtype().id(), Parallel.threads(), loadSeconds);
        out.printf("prefill %d tokens (chunk %d): %.1f tok/s, TTFT %.1f ms%n", promptLen, chunk, r.prefillTokS(),
                r.ttftMs());
        out.printf("%6s %10s %12s %12s %14s %14s %10s%n", "batch", "tok/s", "ITL p50 ms", "ITL p99 ms", "MB per step",
                "roofline tok/s", "fraction");
        for (Decode d : r.decode()) {
            out.printf("%6d %10.1f %12.2f %12.2f %14.1f %14.1f %10.2f%n", d.batch(), d.tokS(), d.itlP50Ms(), d.itlP99Ms(),
                    d.bytesPerStep() / 1e6, r.rooflineTokS(d), d.tokS() / r.rooflineTokS(d));
        }
        for (EngineBenchmark.Verify v : r.verify()) {
            out.printf("batch 1, %d drafts a step%s: %.2f ms a step (p50 %.2f) -> %.1f tok/s with all kept, %.1f with none%n",
                    v.drafts(), v.mtp() ? " by the MTP layer" : "", v.stepMsMean(), v.stepMsP50(), v.tokSAllKept(),
                    v.tokSNoneKept());
        }
        out.printf("weights read per token %.1f MB, bandwidth %.1f GB/s -> roofline %.1f tok/s; batch-1 decode at %.0f%%%n",
                r.bytesPerToken() / 1e6, r.bandwidthGBs(), r.rooflineTokS(), 100 * r.rooflineFraction());
        out.printf("fp32 FMA peak %.0f GFLOP/s, %.1f M multiply-adds per token -> compute ceiling %.1f tok/s at any batch%n",
                r.fmaGFlops(), r.multiplyAddsPerToken() / 1e6, r.computeCeilingTokS());
        out.printf("resident memory %.0f MB; 1-minute load average %.2f before, %.2f after%n", r.rssMb(), loadBefore,
                loadAfter);
    }

    static int fail(PrintWriter err, String message) {
        err.println("epic bench: " + message);
        err.flush();
        return LogitsCommand.BAD_INPUT;
    }
}
