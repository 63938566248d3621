package dev.epic.coordinator.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.RemoteExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.experts.RemoteExperts;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.TestData;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LatencyHistogram;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.TokenIds;
import dev.epic.transport.ExpertRanges;
import dev.epic.worker.CheckpointShard;
import dev.epic.worker.ExpertWorker;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.time.Duration;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.HdrHistogram.Histogram;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.Test;

/** The Stats RPC over real gRPC: a coordinator with two real expert workers (real ZooKeeper), and one with local experts. */
class StatsTest {
    private static final Path DIR = TestData.model("tiny-v3");

    private static GenerateRequest prompt(int maxTokens, int... ids) {
        TokenIds.Builder t = TokenIds.newBuilder();
        for (int id : ids) {
            t.addIds(id);
        }
        return GenerateRequest.newBuilder().setTokenIds(t)
                .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(maxTokens).setIgnoreEos(true))
                .build();
    }

    @Test
    void countsStepsRowsAndEveryExpertLayerCallOfACluster() throws Exception {
        try (TestingServer zk = new TestingServer(true); Checkpoint c = Checkpoint.open(DIR)) {
            ModelConfig cfg = c.config();
            CheckpointFingerprint fp = CheckpointFingerprint.of(DIR);
            int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
            var settings = new ExpertWorker.Settings("127.0.0.1", 0, zk.getConnectString(), "s", null, 64, 10_000, 200, 0);
            try (ExpertWorker low = ExpertWorker.start(CheckpointShard.load(c, ExpertRanges.parse("0-127", 256)), fp,
                    moeLayers, settings);
                 ExpertWorker high = ExpertWorker.start(CheckpointShard.load(c, ExpertRanges.parse("128-255", 256)), fp,
                         moeLayers, settings);
                 RemoteExpertBackend backend = RemoteExpertBackend.connect(zk.getConnectString(), "s", fp, cfg,
                         RemoteExperts.Options.defaults())) {
                assertTrue(backend.awaitCoverage(Duration.ofSeconds(20)), "missing " + backend.missingExperts());
                ServedModel model = ServedModel.open(DIR, backend.experts(), 0);
                try (CoordinatorServer server = CoordinatorServer.start(model, backend, new SchedulerOptions(4, 4, 32),
                        "127.0.0.1", 0)) {
                    ManagedChannel ch = GenerationServiceTest.channel(server.target());
                    try {
                        var api = GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS);
                        StatsResponse before = api.stats(StatsRequest.getDefaultInstance());
                        assertTrue(before.getRemoteExperts());
                        assertEquals(0, before.getSteps());
                        assertEquals(0, before.getMoeLayerCalls());
                        assertEquals(4, before.getMaxBatch());
                        assertEquals(32, before.getPrefillBudget());
                        assertEquals(SchedulerOptions.defaultKvCacheBytes(), before.getKvCacheBudgetBytes(),
                                "the default KV budget, half the heap");
                        assertEquals(0, before.getKvCacheBytes());

                        // 5 prompt tokens in one chunk, then 3 decode steps for tokens 2..4.
                        api.generate(prompt(4, 5, 17, 4, 99, 250)).forEachRemaining(r -> { });
                        StatsResponse s = api.stats(StatsRequest.getDefaultInstance());
                        assertEquals(4, s.getSteps());
                        assertEquals(5, s.getPrefillRows());
                        assertEquals(3, s.getDecodeRows());
                        assertEquals(4L * moeLayers, s.getMoeLayerCalls(), "one expert call per MoE layer per step");
                        assertTrue(s.getUptimeNanos() > before.getUptimeNanos());
                        assertTrue(s.getStepNanos() >= s.getMoeLayerNanos(), "layer calls run inside steps: " + s);
                        assertTrue(s.getWorkerComputeNanos() > 0);
                        assertTrue(s.getDispatchCombineNanos() > 0);
                        assertTrue(s.getDispatchCombineNanos() < s.getMoeLayerNanos());
                        assertTrue(s.getMessages() >= s.getMoeLayerCalls(), "each call reached at least one worker");
                        assertTrue(s.getBytesSent() > 0 && s.getBytesReceived() > 0);
                        assertEquals(0, s.getRetries());
                        assertTrue(s.getRssMb() > 0);
                        // The slot is freed just after the last message goes out: poll for it.
                        long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                        StatsResponse idle = s;
                        while ((idle.getRunning() != 0 || idle.getWaiting() != 0) && System.nanoTime() < until) {
                            Thread.sleep(10);
                            idle = api.stats(StatsRequest.getDefaultInstance());
                        }
                        assertTrue(idle.getRunning() == 0 && idle.getWaiting() == 0, "the finished request left: " + idle);
                        assertEquals("", idle.getMissingExperts(), "both workers cover every expert");
                        assertEquals(0, idle.getKvCacheBytes(), "the finished request's cache is gone");

                        for (LatencyHistogram h : new LatencyHistogram[] {s.getMoeLayer(), s.getDispatchCombine()}) {
                            assertEquals(s.getMoeLayerCalls(), h.getCount());
                            Histogram decoded = decode(h);
                            assertEquals(h.getCount(), decoded.getTotalCount());
                            assertEquals(h.getP50Nanos(), decoded.getValueAtPercentile(50));
                            assertTrue(h.getP50Nanos() > 0 && h.getP50Nanos() <= h.getP99Nanos()
                                    && h.getP99Nanos() <= h.getMaxNanos());
                        }
                        assertEquals(s.getMoeLayerNanos(), s.getMoeLayer().getTotalNanos());
                        assertEquals(s.getDispatchCombineNanos(), s.getDispatchCombine().getTotalNanos());
                        assertTrue(s.getDispatchCombine().getP50Nanos() <= s.getMoeLayer().getMaxNanos());

                        // Two sequences batched: still one expert call per MoE layer per step.
                        var async = GenerationServiceGrpc.newStub(ch);
                        java.util.concurrent.CountDownLatch done = new java.util.concurrent.CountDownLatch(2);
                        for (int i = 0; i < 2; i++) {
                            async.generate(prompt(3, 7, 8 + i), new io.grpc.stub.StreamObserver<>() {
                                public void onNext(dev.epic.proto.GenerateResponse r) { }
                                public void onError(Throwable t) { done.countDown(); }
                                public void onCompleted() { done.countDown(); }
                            });
                        }
                        assertTrue(done.await(30, TimeUnit.SECONDS));
                        StatsResponse t = api.stats(StatsRequest.getDefaultInstance());
                        long steps = t.getSteps() - s.getSteps();
                        assertEquals(4, t.getPrefillRows() - s.getPrefillRows());
                        assertEquals(4, t.getDecodeRows() - s.getDecodeRows());
                        assertEquals(steps * moeLayers, t.getMoeLayerCalls() - s.getMoeLayerCalls());
                        Histogram interval = decode(t.getDispatchCombine());
                        interval.subtract(decode(s.getDispatchCombine()));
                        assertEquals(steps * moeLayers, interval.getTotalCount());

                        // The cluster's roofline counts the routed experts read on the workers.
                        long bytes = api.modelInfo(ModelInfoRequest.getDefaultInstance()).getWeightBytesPerToken();
                        assertEquals(ServedModel.open(DIR, null, 0).weightBytesPerToken(), bytes);
                        assertTrue(bytes > model.transformer().weightBytesPerToken());
                        assertEquals(model.tokenizer().size(),
                                api.modelInfo(ModelInfoRequest.getDefaultInstance()).getTokenizerVocabSize());

                        // A worker dies: the failed layer call shows at once, though its step never ends.
                        high.kill();
                        StatusRuntimeException dead = assertThrows(StatusRuntimeException.class,
                                () -> api.generate(prompt(3, 7, 9)).forEachRemaining(r -> { }));
                        assertEquals(Status.Code.UNAVAILABLE, dead.getStatus().getCode(), dead.toString());
                        StatsResponse failed = api.stats(StatsRequest.getDefaultInstance());
                        assertTrue(failed.getFailures() >= 1, "failures: " + failed);
                        assertEquals(t.getSteps(), failed.getSteps(), "no step completed: " + failed);
                        // While experts are missing, a request that can never run is still 400, not 503 (retry).
                        assertFalse(failed.getMissingExperts().isEmpty(), failed.toString());
                        StatusRuntimeException bad = assertThrows(StatusRuntimeException.class, () -> api.generate(
                                prompt(3, 7, 9).toBuilder().setResponseFormat(dev.epic.proto.ResponseFormat.newBuilder()
                                        .setType(dev.epic.proto.ResponseFormat.Type.JSON_OBJECT)).build()) // with ignore_eos
                                .forEachRemaining(r -> { }));
                        assertEquals(Status.Code.INVALID_ARGUMENT, bad.getStatus().getCode(), bad.toString());
                    } finally {
                        ch.shutdownNow();
                    }
                }
            }
        }
    }

    @Test
    void localExpertsReportStepsAndNoDispatch() throws Exception {
        ServedModel model = ServedModel.open(DIR, null, 0);
        try (CoordinatorServer server = CoordinatorServer.start(model, ExpertBackend.local(), new SchedulerOptions(2, 2, 3),
                "127.0.0.1", 0)) {
            ManagedChannel ch = GenerationServiceTest.channel(server.target());
            try {
                var api = GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(30, TimeUnit.SECONDS);
                api.generate(prompt(2, 5, 17, 4, 99, 250, 3, 9)).forEachRemaining(r -> { });
                StatsResponse s = api.stats(StatsRequest.getDefaultInstance());
                // 7 prompt tokens at 3 per step = 3 steps, then one decode step.
                assertEquals(4, s.getSteps());
                assertEquals(7, s.getPrefillRows());
                assertEquals(1, s.getDecodeRows());
                assertTrue(s.getStepNanos() > 0);
                assertFalse(s.getRemoteExperts());
                assertEquals(0, s.getMoeLayerCalls());
                assertEquals(0, s.getDispatchCombine().getCount());
                assertEquals(model.transformer().weightBytesPerToken(),
                        api.modelInfo(ModelInfoRequest.getDefaultInstance()).getWeightBytesPerToken());
            } finally {
                ch.shutdownNow();
            }
        }
    }

    private static Histogram decode(LatencyHistogram h) throws Exception {
        return Histogram.decodeFromCompressedByteBuffer(ByteBuffer.wrap(h.getHdrHistogram().toByteArray()), 0);
    }
}
