package dev.epic.it;

import static dev.epic.kernels.VectorOps.argmax;
import static dev.epic.model.Golden.maxAbsDiff;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.coordinator.experts.ExpertsUnavailableException;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.Golden;
import dev.epic.model.KvCache;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.proto.ExpertRequest;
import dev.epic.proto.HiddenEncoding;
import dev.epic.transport.Announcements;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.Protocol;
import dev.epic.transport.ZkLayout;
import dev.epic.worker.DispatchOnce;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.netty.NettyChannelBuilder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.retry.RetryOneTime;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

/**
 * Expert parallelism with real, separate worker processes ({@code epic expert-worker}), a real
 * ZooKeeper and gRPC over loopback; the engine (the coordinator's role) runs in this JVM with
 * {@link RemoteExperts}. Each test uses its own cluster name in one shared ZooKeeper.
 */
@Timeout(value = 180, unit = TimeUnit.SECONDS)
class ExpertParallelIT {
    private static final float LOGIT_TOL = Golden.LOGIT_TOL;
    private static final RemoteExperts.Options OPTIONS = RemoteExperts.Options.defaults().withDeadline(Duration.ofSeconds(15));
    private static TestingServer zkServer;
    private static CuratorFramework zk;
    private static final Map<String, Checkpoint> CHECKPOINTS = new HashMap<>();
    private final List<WorkerProcess> workers = new ArrayList<>();

    @BeforeAll
    static void startZooKeeper() throws Exception {
        zkServer = new TestingServer(true);
        zk = CuratorFrameworkFactory.newClient(zkServer.getConnectString(), new RetryOneTime(100));
        zk.start();
        zk.blockUntilConnected();
    }

    @AfterAll
    static void stopZooKeeper() throws Exception {
        CHECKPOINTS.values().forEach(Checkpoint::close);
        zk.close();
        zkServer.close();
    }

    @AfterEach
    void stopWorkers() throws InterruptedException {
        for (WorkerProcess w : workers) {
            w.close();
        }
    }

    private WorkerProcess worker(Path model, String cluster, String id, String experts) throws Exception {
        WorkerProcess w = WorkerProcess.start(model, zkServer.getConnectString(), cluster, id, experts);
        workers.add(w);
        return w;
    }

    private static Checkpoint checkpoint(String model) {
        return CHECKPOINTS.computeIfAbsent(model, m -> Checkpoint.open(TestData.model(m)));
    }

    private RemoteExperts remote(String model, String cluster, boolean awaitCoverage) throws Exception {
        Checkpoint c = checkpoint(model);
        RemoteExperts re = RemoteExperts.create(zk, cluster, CheckpointFingerprint.of(TestData.model(model)),
                c.config().nRoutedExperts(), c.config().hiddenSize(), OPTIONS, null);
        if (awaitCoverage && !re.awaitCoverage(Duration.ofSeconds(60))) {
            String logs = workers.stream().map(w -> "--- " + w.id + "\n" + w.logText()).reduce("", String::concat);
            re.close();
            throw new AssertionError("workers did not cover all experts; missing " + re.missingExperts() + "\n" + logs);
        }
        return re;
    }

    private static Transformer engine(String model, RemoteExperts re) {
        Checkpoint c = checkpoint(model);
        return new Transformer(c.config(), c, re);
    }

    /** Prefill + 12 cached greedy steps of golden prompt p; every logits vector within Golden.LOGIT_TOL. */
    private static void assertGolden(String model, Transformer engine, int p, Runnable afterPrefill) {
        Golden.Prompt g = Golden.of(model).prompts().get(p);
        KvCache cache = engine.newCache();
        float[] logits = engine.forward(cache, g.tokens());
        float diff = maxAbsDiff(g.prefillLogits(), logits);
        assertTrue(diff <= LOGIT_TOL, model + " prompt " + p + " prefill max abs diff " + diff);
        afterPrefill.run();
        int[] tokens = new int[g.greedyTokens().length];
        for (int k = 0; k < tokens.length; k++) {
            tokens[k] = argmax(logits);
            logits = engine.forward(cache, tokens[k]);
            diff = maxAbsDiff(g.stepLogits()[k], logits);
            assertTrue(diff <= LOGIT_TOL, model + " prompt " + p + " step " + k + " max abs diff " + diff);
        }
        assertArrayEquals(g.greedyTokens(), tokens, model + " prompt " + p + " greedy tokens");
    }

    private static void assertGolden(String model, Transformer engine, int... prompts) {
        for (int p : prompts) {
            assertGolden(model, engine, p, () -> {});
        }
    }

    @Test
    void oneTwoAndFourWorkersGiveTheGoldenLogits() throws Exception {
        String model = "tiny-v3";
        Path dir = TestData.model(model);
        worker(dir, "v3-one", "all", "0-255");
        worker(dir, "v3-two", "lo", "0-127");
        worker(dir, "v3-two", "hi", "128-255");
        worker(dir, "v3-four", "q0", "0-63");
        worker(dir, "v3-four", "q1", "64-127");
        worker(dir, "v3-four", "q2", "128-191");
        worker(dir, "v3-four", "q3", "192-255");
        for (String cluster : List.of("v3-one", "v3-two", "v3-four")) {
            try (RemoteExperts re = remote(model, cluster, true)) {
                Transformer engine = engine(model, re);
                assertGolden(model, engine, 0, 3); // includes warm-up
                var before = re.stats().snapshot();
                assertGolden(model, engine, 1);
                var s = re.stats().snapshot().minus(before);
                System.out.printf("%s: %d MoE-layer calls, mean dispatch+combine %.0f us (worker compute %.0f us), "
                                + "%d messages, %d bytes sent, %d received%n", cluster, s.layerCalls(), s.meanLayerMicros(),
                        s.workerComputeNanos() / 1e3 / s.layerCalls(), s.messages(), s.bytesSent(), s.bytesReceived());
            }
        }
    }

    @Test
    void replicationTwoSurvivesKillMinusNineMidRun() throws Exception {
        String model = "tiny-v3-fp8";
        Path dir = TestData.model(model);
        worker(dir, "fp8-four", "a0", "0-31");
        WorkerProcess victim = worker(dir, "fp8-four", "a1", "0-31");
        worker(dir, "fp8-four", "b0", "32-63");
        worker(dir, "fp8-four", "b1", "32-63");
        try (RemoteExperts re = remote(model, "fp8-four", true)) {
            Transformer engine = engine(model, re);
            assertGolden(model, engine, 0, 1); // four workers, two replicas per expert
            // kill -9 one replica between a prompt's prefill and its decode steps: the rows routed to it are
            // retried on the other replica, and the tokens and logits do not change.
            long retries = re.stats().snapshot().retries();
            assertGolden(model, engine, 3, () -> {
                try {
                    victim.kill9();
                } catch (InterruptedException e) {
                    throw new AssertionError(e);
                }
            });
            assertFalse(victim.isAlive());
            assertTrue(re.stats().snapshot().retries() > retries, "rows sent to the dead replica were retried: "
                    + re.stats().snapshot());
            assertGolden(model, engine, 2); // and afterwards, with one replica left for 0-31
        }
    }

    @Test
    void replicationOneFailsUnavailableThenResumesWhenTheWorkerRestarts() throws Exception {
        String model = "tiny-v3-fp8";
        Path dir = TestData.model(model);
        worker(dir, "fp8-two", "lo", "0-31");
        WorkerProcess hi = worker(dir, "fp8-two", "hi", "32-63");
        try (RemoteExperts re = remote(model, "fp8-two", true)) {
            Transformer engine = engine(model, re);
            assertGolden(model, engine, 1);
            hi.kill9();
            Golden.Prompt g = Golden.of(model).prompts().get(3);
            long t0 = System.nanoTime();
            ExpertsUnavailableException e = assertThrows(ExpertsUnavailableException.class,
                    () -> engine.forward(engine.newCache(), g.tokens()));
            System.out.printf("UNAVAILABLE after %d ms: %s%n", (System.nanoTime() - t0) / 1_000_000,
                    e.getStatus().getDescription());
            assertEquals(Status.Code.UNAVAILABLE, e.getStatus().getCode());
            String msg = e.getStatus().getDescription();
            assertTrue(msg.startsWith("no live expert worker for experts "), msg);
            int[] named = ExpertRanges.parse(msg.substring("no live expert worker for experts ".length(), msg.indexOf(" (")), 64);
            assertTrue(named.length > 0 && Arrays.stream(named).allMatch(x -> x >= 32), "only the killed shard: " + msg);

            worker(dir, "fp8-two", "hi", "32-63"); // restarted (new process, new port, same id)
            assertTrue(re.awaitCoverage(Duration.ofSeconds(60)), "restarted worker not picked up: " + re.missingExperts());
            assertGolden(model, engine, 3);
        }
    }

    @Test
    void workerOfAnotherModelIsRefusedAndALateJoinerIsPickedUp(@TempDir Path tmp) throws Exception {
        String model = "tiny-v3-fp8";
        Path dir = TestData.model(model);
        // the same weights with another rms_norm_eps: a different model, so a different fingerprint
        Path other = tmp.resolve(model);
        Files.createDirectories(other);
        try (var files = Files.list(dir)) {
            for (Path f : files.toList()) {
                Files.copy(f, other.resolve(f.getFileName()));
            }
        }
        Files.delete(other.resolve("config.json"));
        Files.writeString(other.resolve("config.json"),
                Files.readString(dir.resolve("config.json")).replace("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-05"));
        String cluster = "fp8-late";
        worker(other, cluster, "impostor", "0-63");
        String impostorPath = ZkLayout.workerPath(cluster, "impostor");
        waitForNode(impostorPath);

        try (RemoteExperts re = remote(model, cluster, false)) {
            assertFalse(re.awaitCoverage(Duration.ofSeconds(2)), "the impostor must not be used");
            assertEquals("0-63", re.missingExperts());
            Transformer engine = engine(model, re);
            assertThrows(ExpertsUnavailableException.class, () -> engine.forward(engine.newCache(), 5, 6, 7));

            // the impostor itself also refuses our fingerprint on the wire
            String address = Announcements.fromJson(zk.getData().forPath(impostorPath)).getAddress();
            Status refused = dispatchOnce(address, CheckpointFingerprint.of(dir).sha256());
            assertEquals(Status.Code.FAILED_PRECONDITION, refused.getCode());
            assertTrue(refused.getDescription().contains("model fingerprint mismatch"), refused.getDescription());

            worker(dir, cluster, "late", "0-63"); // joins after the coordinator started
            assertTrue(re.awaitCoverage(Duration.ofSeconds(60)), "late worker not picked up");
            assertEquals(1, re.workers().size(), re.workers().toString());
            assertTrue(re.workers().getFirst().startsWith("late@"), re.workers().toString());
            assertGolden(model, engine, 0, 4);
        }
    }

    @Test
    void sigtermDeregistersAndExitsCleanly() throws Exception {
        String model = "tiny-v3-fp8";
        WorkerProcess w = worker(TestData.model(model), "fp8-term", "w", "0-63");
        String path = ZkLayout.workerPath("fp8-term", "w");
        waitForNode(path);
        int exit = w.terminate();
        assertTrue(exit == 0 || exit == 143, "exit " + exit + " (143 = terminated by SIGTERM after the hooks ran)\n"
                + w.logText());
        // ephemeral node removed by the drain itself, not by session expiry
        assertEquals(null, zk.checkExists().forPath(path));
        assertTrue(w.logText().contains("deregistered"), w.logText());
    }

    private void waitForNode(String path) throws Exception {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(60);
        while (zk.checkExists().forPath(path) == null) {
            if (System.nanoTime() > deadline) {
                String logs = workers.stream().map(w -> "--- " + w.id + "\n" + w.logText()).reduce("", String::concat);
                throw new AssertionError(path + " never appeared\n" + logs);
            }
            Thread.sleep(50);
        }
    }

    /** Sends one minimal message on a fresh Dispatch stream; returns the status it ended with (OK if answered). */
    private static Status dispatchOnce(String address, String fingerprint) throws Exception {
        ManagedChannel ch = NettyChannelBuilder.forTarget(address).usePlaintext().build();
        try {
            return DispatchOnce.status(ch, ExpertRequest.newBuilder().setProtocolVersion(Protocol.VERSION)
                    .setFingerprint(fingerprint).setLayer(1).setRows(1).setHidden(160).setEncoding(HiddenEncoding.FP32)
                    .setHiddenStates(com.google.protobuf.ByteString.copyFrom(new byte[640]))
                    .addExpertCounts(1).addExpertIds(0).addGateWeights(1f).build());
        } finally {
            ch.shutdownNow();
        }
    }
}
