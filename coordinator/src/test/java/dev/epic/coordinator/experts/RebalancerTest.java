package dev.epic.coordinator.experts;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.ExpertWorker;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.time.Duration;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.Test;

/**
 * Online expert rebalancing end to end, with real expert workers (gRPC over loopback) and a real
 * ZooKeeper: a skewed load is measured, a placement published, the idle worker loads the hot experts
 * and announces them, and the coordinator then splits their rows over both workers, with results
 * bit for bit the in-process experts'.
 */
class RebalancerTest {
    @Test
    void hotExpertsMoveToTheIdleWorkerAndResultsStayExact() throws Exception {
        String model = "tiny-v3";
        try (TestingServer zkServer = new TestingServer(true);
                CuratorFramework zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
                Checkpoint c = Checkpoint.open(TestData.model(model))) {
            zk.start();
            zk.blockUntilConnected();
            ModelConfig cfg = c.config();
            CheckpointFingerprint fp = CheckpointFingerprint.of(TestData.model(model));
            int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
            String cluster = "rebalance";
            try (ExpertWorker low = ExpertWorker.start(CheckpointShard.load(c, ExpertRanges.parse("0-127", 256)), fp,
                    moeLayers, new ExpertWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster, "low", 64,
                            10_000, 200, 0, 4));
                    ExpertWorker high = ExpertWorker.start(CheckpointShard.load(c, ExpertRanges.parse("128-255", 256)),
                            fp, moeLayers, new ExpertWorker.Settings("127.0.0.1", 0, zkServer.getConnectString(), cluster,
                                    "high", 64, 10_000, 200, 0, 4));
                    RemoteExperts re = RemoteExperts.create(zk, cluster, fp, cfg.nRoutedExperts(), cfg.hiddenSize(),
                            RemoteExperts.Options.defaults().withRebalance(Duration.ofHours(1)), new SimpleMeterRegistry())) {
                assertTrue(re.awaitCoverage(Duration.ofSeconds(20)));
                LocalExperts local = LocalExperts.all(cfg, c);
                int layer = 2;
                int k = cfg.numExpertsPerTok();
                int rows = 12;
                // Every row picks experts 0-7, all on "low": "high" idles in this layer.
                SplittableRandom r = new SplittableRandom(3);
                float[] x = new float[rows * cfg.hiddenSize()];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) r.nextGaussian();
                }
                int[] ids = new int[rows * k];
                float[] w = new float[rows * k];
                for (int i = 0; i < rows * k; i++) {
                    ids[i] = i % k;
                    w[i] = (float) r.nextDouble(0.05, 1);
                }
                float[] expected = new float[x.length];
                local.forward(layer, x, rows, ids, w, k, expected);
                float[] got = new float[x.length];
                re.forward(layer, x, rows, ids, w, k, got);
                assertArrayEquals(expected, got);
                long before = re.stats().snapshot().messages();
                re.forward(layer, x, rows, ids, w, k, got);
                assertEquals(1, re.stats().snapshot().messages() - before, "one worker holds them all");
                for (int step = 0; step < 24; step++) { // a plan needs 8 rows per expert of the layer: 2,048
                    re.forward(layer, x, rows, ids, w, k, got);
                }

                Eplb.Plan plan = re.rebalanceNow();
                assertNotNull(plan, "a skewed load gets a placement");
                int[] moved = plan.extras().get("high").get(layer);
                assertEquals(4, moved.length, "high fills its 4 slots with hot experts");
                assertTrue(IntStream.of(moved).allMatch(e -> e < k), "only the hot experts 0-7 move");
                assertTrue(plan.imbalanceAfter() < plan.imbalanceBefore());
                Poll.until("high announces the moved experts", () -> re.table().replicaCount(layer, moved[0]) == 2);
                assertEquals(1, re.table().replicaCount(layer + 1, moved[0]), "only in the layer they were placed in");

                before = re.stats().snapshot().messages();
                re.forward(layer, x, rows, ids, w, k, got);
                assertEquals(2, re.stats().snapshot().messages() - before, "the hot experts' rows now go to both");
                assertArrayEquals(expected, got, "exact whichever replica computed which row");

                // The same skew again, enough of it to plan: a new plan would be the placement in force,
                // so nothing is published.
                for (int step = 0; step < 24; step++) {
                    re.forward(layer, x, rows, ids, w, k, got);
                }
                assertEquals(null, re.rebalanceNow());
            }
        }
    }
}
