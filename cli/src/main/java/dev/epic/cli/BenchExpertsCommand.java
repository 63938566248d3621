package dev.epic.cli;

import dev.epic.kernels.WeightLayout;
import dev.epic.kernels.cuda.CudaDevice;
import dev.epic.model.config.ModelConfig;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CudaShard;
import dev.epic.worker.GpuExpertBenchmark;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

/** {@code epic bench-experts}: one MoE layer's routed experts on a GPU, at a real model's size. */
@Command(name = "bench-experts", mixinStandardHelpOptions = true,
        description = {"Benchmark one MoE layer's routed experts on a GPU expert worker, with pseudo-random weights "
                + "made on the device at the model's real size (no checkpoint needed).",
            "Prints, per batch: experts touched, weight bytes read, device time of the products, their GB/s as a "
                + "fraction of the measured copy bandwidth, and the worker's whole-message time and tokens/s."})
public final class BenchExpertsCommand implements Callable<Integer> {
    @Option(names = "--model", paramLabel = "DIR",
            description = "take the dimensions from this checkpoint's config.json (default: DeepSeek-V3's: hidden "
                    + "7168, expert width 2048, 256 experts, 8 per token)")
    Path model;

    @Option(names = "--device", defaultValue = "cuda:0", paramLabel = "cuda[:N]", description = "GPU (default ${DEFAULT-VALUE})")
    String device;

    @Option(names = "--weights", defaultValue = "bf16", paramLabel = "bf16|fp8",
            description = "weight format on the GPU: bf16, or fp8 e4m3 with 128x128 block scales (default ${DEFAULT-VALUE})")
    String weights;

    @Option(names = "--activations", defaultValue = "fp32", paramLabel = "fp32|bf16",
            description = "fp32, or bf16 on the tensor cores for experts with at least " + CudaShard.BF16_MIN_ROWS
                    + " rows (default ${DEFAULT-VALUE})")
    String activations;

    @Option(names = "--experts", paramLabel = "RANGES", description = "experts this worker hosts (default: all)")
    String experts;

    @Option(names = "--batch", defaultValue = "1,8,32,128,512", split = ",", paramLabel = "N",
            description = "tokens per message (default ${DEFAULT-VALUE})")
    List<Integer> batches;

    @Option(names = "--iterations", defaultValue = "20", paramLabel = "N", description = "timed messages per batch (default ${DEFAULT-VALUE})")
    int iterations;

    @Option(names = "--json", description = "print one JSON object instead of the table")
    boolean json;

    @Override
    public Integer call() throws Exception {
        int hidden = 7168;
        int inter = 2048;
        int routed = 256;
        int k = 8;
        if (model != null) {
            ModelConfig c = ModelConfig.load(model);
            if (c.nRoutedExperts() == null) {
                throw new IllegalArgumentException(model + " is a dense model: it has no routed experts");
            }
            hidden = c.hiddenSize();
            inter = c.moeIntermediateSize();
            routed = c.nRoutedExperts();
            k = c.numExpertsPerTok();
        }
        WeightLayout.Format format = switch (weights) {
            case "bf16" -> WeightLayout.Format.BF16;
            case "fp8" -> WeightLayout.Format.FP8_BLOCK;
            default -> throw new IllegalArgumentException("--weights must be bf16 or fp8, got '" + weights + "'");
        };
        CudaShard.Activations act = CudaShard.Activations.parse(activations);
        int ordinal = GpuFlag.ordinal("--device", device, "cuda or cuda:N");
        if (batches.stream().anyMatch(b -> b < 1)) {
            throw new IllegalArgumentException("--batch sizes must be >= 1, got " + batches);
        }
        if (iterations < 1) {
            throw new IllegalArgumentException("--iterations must be >= 1, got " + iterations);
        }
        int[] ids = experts != null ? ExpertRanges.parse(experts, routed) : java.util.stream.IntStream.range(0, routed).toArray();
        if (ids.length < k) {
            throw new IllegalArgumentException("a token takes " + k + " experts: host at least that many, got " + ids.length);
        }
        try (CudaDevice gpu = CudaDevice.open(ordinal)) {
            double copy = gpu.copyBandwidth(1L << 30);
            long t0 = System.nanoTime();
            try (CudaShard shard = CudaShard.random(gpu, format, hidden, inter, routed, 1, ids).activations(act)) {
                double makeS = (System.nanoTime() - t0) / 1e9;
                List<GpuExpertBenchmark.Result> results = GpuExpertBenchmark.run(shard, 0, k,
                        batches.stream().mapToInt(Integer::intValue).toArray(), iterations, copy, 42);
                if (json) {
                    Map<String, Object> o = new LinkedHashMap<>();
                    o.put("device", gpu.name());
                    o.put("weights", weights);
                    o.put("activations", activations);
                    o.put("hidden", hidden);
                    o.put("expert_width", inter);
                    o.put("experts_hosted", ids.length);
                    o.put("experts_per_token", k);
                    o.put("copy_bandwidth_gb_s", copy);
                    o.put("results", results.stream().map(r -> {
                        Map<String, Object> m = new LinkedHashMap<>();
                        m.put("batch", r.batch());
                        m.put("experts_touched", r.expertsTouched());
                        m.put("weight_bytes", r.weightBytes());
                        m.put("device_us", r.deviceUs());
                        m.put("weight_gb_s", r.weightGbPerS());
                        m.put("of_copy_bandwidth", r.ofCopyBandwidth());
                        m.put("worker_us", r.workerUs());
                        m.put("tok_s", r.tokensPerSecond());
                        return m;
                    }).toList());
                    System.out.println(JsonLines.MAPPER.writeValueAsString(o));
                } else {
                    System.out.printf("%s, %s experts [%d x %d], %s activations, %d of %d hosted, %d per token; %d MiB on "
                                    + "the GPU, made in %.1f s; device copy bandwidth %.0f GB/s (read + write)%n", gpu.name(), weights,
                            inter, hidden, activations, ids.length, routed, k, shard.residentBytes() >> 20, makeS, copy);
                    System.out.printf("%6s %8s %10s %11s %9s %8s %11s %12s%n", "batch", "experts", "weight MB", "device us",
                            "GB/s", "of copy", "worker us", "tokens/s");
                    for (var r : results) {
                        System.out.printf("%6d %8d %10.1f %11.1f %9.0f %8.2f %11.1f %12.0f%n", r.batch(), r.expertsTouched(),
                                r.weightBytes() / 1e6, r.deviceUs(), r.weightGbPerS(), r.ofCopyBandwidth(), r.workerUs(),
                                r.tokensPerSecond());
                    }
                }
            }
        }
        return 0;
    }
}
