package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.ModelInfoRequest;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.net.ServerSocket;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/** {@code epic coordinator} as its own process, with a separately started ZooKeeper and worker. */
@Timeout(value = 120, unit = TimeUnit.SECONDS)
class CoordinatorCommandIT {
    @Test
    void servesGoldenLogitsOnceTheWorkerHasJoined() throws Exception {
        Path model = TestData.model("tiny-v3");
        int port;
        try (ServerSocket s = new ServerSocket(0)) {
            port = s.getLocalPort();
        }
        Path log = EpicLocal.logFile("coordinator-command");
        try (TestingServer zk = new TestingServer(true)) {
            // The coordinator starts first: it serves (NOT_SERVING) until the worker joins.
            Process coordinator = new ProcessBuilder(EpicLocal.java("coordinator", "--model", model.toString(), "--zk",
                    zk.getConnectString(), "--cluster", "cmd", "--port", "" + port, "--host", "127.0.0.1"))
                    .redirectErrorStream(true).redirectOutput(log.toFile()).start();
            ManagedChannel ch = NettyChannelBuilder.forAddress("127.0.0.1", port).usePlaintext()
                    .maxInboundMessageSize(64 << 20).build();
            try (WorkerProcess worker = WorkerProcess.start(model, zk.getConnectString(), "cmd", "all", "0-255")) {
                var health = HealthGrpc.newBlockingStub(ch);
                HealthCheckResponse.ServingStatus status = null;
                for (int i = 0; i < 600 && status != HealthCheckResponse.ServingStatus.SERVING; i++) {
                    assertTrue(coordinator.isAlive(), "coordinator exited: " + Files.readString(log));
                    try {
                        status = health.check(HealthCheckRequest.getDefaultInstance()).getStatus();
                    } catch (StatusRuntimeException notYet) {
                        // not listening yet
                    }
                    if (status != HealthCheckResponse.ServingStatus.SERVING) {
                        Thread.sleep(100);
                    }
                }
                assertEquals(HealthCheckResponse.ServingStatus.SERVING, status, Files.readString(log));
                var api = GenerationServiceGrpc.newBlockingStub(ch).withDeadlineAfter(60, TimeUnit.SECONDS);
                assertEquals(1, api.modelInfo(ModelInfoRequest.getDefaultInstance()).getExpertWorkersCount());
                Golden.Prompt g = Golden.of("tiny-v3").prompts().get(0);
                LogitsRequest.Builder req = LogitsRequest.newBuilder().setSteps(2);
                IntStream.of(g.tokens()).forEach(req::addPromptTokenIds);
                LogitsResponse r = api.logits(req.build());
                float[] prefill = new float[r.getVocabSize()];
                r.getSteps(0).getLogits().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(prefill);
                assertTrue(Golden.maxAbsDiff(g.prefillLogits(), prefill) < Golden.LOGIT_TOL);
                assertEquals(g.greedyTokens()[0], r.getSteps(0).getArgmax());
                assertEquals(g.greedyTokens()[1], r.getSteps(1).getArgmax());
            } finally {
                ch.shutdownNow();
                coordinator.destroy();
                if (!coordinator.waitFor(20, TimeUnit.SECONDS)) {
                    coordinator.destroyForcibly();
                }
            }
        }
    }
}
