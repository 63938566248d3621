package dev.epic.coordinator.experts.probe;

import dev.epic.coordinator.experts.DispatchStats;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.ExpertWorker;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.HdrHistogram.Histogram;
import org.apache.curator.test.TestingServer;

/**
 * The transport floor of expert parallelism: N expert workers in this JVM (real gRPC over
 * loopback, real ZooKeeper), one RemoteExperts calling one MoE layer back to back, and the
 * dispatch+combine and layer latency percentiles of each round. Without other processes competing
 * for the cores, this separates what the transport costs from what a crowded machine adds
 * (compare with {@code epic bench --target} against {@code epic local}).
 *
 * <p>{@code DispatchLatencyProbe MODEL_DIR [workers=4] [rows=1] [calls=20000] [rounds=4]}
 */
public final class DispatchLatencyProbe {
    private DispatchLatencyProbe() {}

    public static void main(String[] args) throws Exception {
        Path dir = Path.of(args.length > 0 ? args[0] : "testdata/tiny-v3");
        int workers = args.length > 1 ? Integer.parseInt(args[1]) : 4;
        int rows = args.length > 2 ? Integer.parseInt(args[2]) : 1;
        int calls = args.length > 3 ? Integer.parseInt(args[3]) : 20_000;
        int rounds = args.length > 4 ? Integer.parseInt(args[4]) : 4;
        try (TestingServer zk = new TestingServer(true); Checkpoint c = Checkpoint.open(dir)) {
            List<ExpertWorker> started = new ArrayList<>();
            try {
                run(zk, c, dir, workers, rows, calls, rounds, started);
            } finally {
                started.forEach(ExpertWorker::close); // before ZooKeeper stops: they deregister
            }
        }
    }

    private static void run(TestingServer zk, Checkpoint c, Path dir, int workers, int rows, int calls, int rounds,
            List<ExpertWorker> started) throws Exception {
        {
            ModelConfig cfg = c.config();
            int experts = cfg.nRoutedExperts();
            int k = cfg.numExpertsPerTok();
            int hidden = cfg.hiddenSize();
            int[] moeLayers = IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).toArray();
            CheckpointFingerprint fp = CheckpointFingerprint.of(dir);
            for (int w = 0; w < workers; w++) {
                int[] ids = IntStream.range(experts * w / workers, experts * (w + 1) / workers).toArray();
                started.add(ExpertWorker.start(CheckpointShard.load(c, ids), fp, moeLayers.length,
                        new ExpertWorker.Settings("127.0.0.1", 0, zk.getConnectString(), "probe", null, 64, 10_000,
                                200, 0)));
            }
            try (RemoteExperts re = RemoteExperts.connect(zk.getConnectString(), "probe", fp, experts, hidden,
                    RemoteExperts.Options.defaults(), null)) {
                if (!re.awaitCoverage(Duration.ofSeconds(60))) {
                    throw new IllegalStateException("workers did not cover experts " + re.missingExperts());
                }
                SplittableRandom r = new SplittableRandom(1);
                float[] x = new float[rows * hidden];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) r.nextGaussian();
                }
                int[] ids = new int[rows * k];
                float[] weights = new float[rows * k];
                for (int i = 0; i < rows; i++) {
                    int[] pick = r.ints(0, experts).distinct().limit(k).toArray();
                    for (int j = 0; j < k; j++) {
                        ids[i * k + j] = pick[j];
                        weights[i * k + j] = (float) r.nextDouble(0.05, 1);
                    }
                }
                float[] out = new float[rows * hidden];
                System.out.printf("%s, %d workers in this JVM, %d rows, %d calls per round (round 0 warms up)%n",
                        dir.getFileName(), workers, rows, calls);
                for (int round = 0; round < rounds; round++) {
                    DispatchStats.Snapshot before = re.stats().snapshot();
                    DispatchStats.Histograms h0 = re.stats().histograms();
                    long t0 = System.nanoTime();
                    for (int i = 0; i < calls; i++) {
                        re.forward(moeLayers[i % moeLayers.length], x, rows, ids, weights, k, out);
                    }
                    long elapsed = System.nanoTime() - t0;
                    DispatchStats.Histograms h = re.stats().histograms();
                    Histogram dc = h.dispatchCombine();
                    dc.subtract(h0.dispatchCombine());
                    Histogram layer = h.layer();
                    layer.subtract(h0.layer());
                    DispatchStats.Snapshot s = re.stats().snapshot().minus(before);
                    System.out.printf("round %d: %.1f us/call; layer p50 %.1f p99 %.1f us; dispatch+combine p50 %.1f "
                                    + "p99 %.1f us; worker compute %.1f us/message, %.2f messages/call%n", round,
                            elapsed / 1e3 / calls, layer.getValueAtPercentile(50) / 1e3,
                            layer.getValueAtPercentile(99) / 1e3, dc.getValueAtPercentile(50) / 1e3,
                            dc.getValueAtPercentile(99) / 1e3, s.workerComputeNanos() / 1e3 / s.messages(),
                            (double) s.messages() / s.layerCalls());
                }
            }
        }
    }
}
