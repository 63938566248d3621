package dev.epic.worker;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One MoE layer's routed experts on a GPU shard, as an expert worker runs them (gather, copy in,
 * experts, copy out, combine; no network), for batches of tokens each routed to k distinct experts
 * drawn uniformly from those hosted. Reports the device time of the products against the weight
 * bytes they must read (every touched expert once) and the device's copy bandwidth.
 */
public final class GpuExpertBenchmark {
    /**
     * @param deviceUs    median device time of the experts' products (events; no copies)
     * @param workerUs    median wall time of the whole message through {@link ShardExecutor}
     * @param weightBytes bytes of the experts the batch touches (each read at least once)
     */
    public record Result(int batch, int expertsTouched, long weightBytes, double deviceUs, double workerUs,
            double weightGbPerS, double ofCopyBandwidth) {
        /** Tokens per second through this one layer, from the worker's wall time. */
        public double tokensPerSecond() {
            return batch / (workerUs * 1e-6);
        }
    }

    private GpuExpertBenchmark() {}

    public static List<Result> run(CudaShard shard, int layer, int k, int[] batches, int iterations, double copyGbPerS,
            long seed) {
        int hidden = shard.hiddenSize();
        int[] hosted = shard.experts();
        ShardExecutor executor = new ShardExecutor(shard);
        SplittableRandom rnd = new SplittableRandom(seed);
        List<Result> out = new ArrayList<>();
        for (int batch : batches) {
            float[] x = new float[batch * hidden];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) rnd.nextGaussian();
            }
            double[] sums = new double[batch * hidden];
            double[] device = new double[iterations];
            double[] wall = new double[iterations];
            long bytesSum = 0;
            int touchedSum = 0;
            for (int it = -3; it < iterations; it++) { // three warm-ups
                int[] counts = new int[batch];
                int[] ids = new int[batch * k];
                float[] w = new float[batch * k];
                for (int r = 0; r < batch; r++) {
                    int[] pick = rnd.ints(0, hosted.length).distinct().limit(k).map(j -> hosted[j]).sorted().toArray();
                    counts[r] = k;
                    for (int j = 0; j < k; j++) {
                        ids[r * k + j] = pick[j];
                        w[r * k + j] = 1f / k;
                    }
                }
                long t0 = System.nanoTime();
                executor.forward(layer, x, batch, counts, ids, w, sums);
                long t1 = System.nanoTime();
                // the same message's products again, timed on the device alone
                int[] sorted = ids.clone();
                Arrays.sort(sorted);
                int[] experts = new int[sorted.length];
                int[] starts = new int[sorted.length + 1];
                int n = 0;
                for (int i = 0; i < sorted.length; i++) {
                    if (i == 0 || sorted[i] != sorted[i - 1]) {
                        experts[n] = sorted[i];
                        starts[n++] = i;
                    }
                }
                starts[n] = sorted.length;
                float ms = shard.timeExperts(layer, experts, starts, n);
                if (it >= 0) {
                    wall[it] = (t1 - t0) / 1e3;
                    device[it] = ms * 1e3;
                    touchedSum += n;
                    for (int i = 0; i < n; i++) {
                        bytesSum += shard.expertBytes(layer, experts[i]);
                    }
                }
            }
            double deviceUs = median(device);
            long bytes = bytesSum / iterations;
            double gbps = bytes / (deviceUs * 1e-6) / 1e9;
            out.add(new Result(batch, touchedSum / iterations, bytes, deviceUs, median(wall), gbps, gbps / copyGbPerS));
        }
        return out;
    }

    private static double median(double[] v) {
        double[] s = v.clone();
        Arrays.sort(s);
        return s[s.length / 2];
    }
}
