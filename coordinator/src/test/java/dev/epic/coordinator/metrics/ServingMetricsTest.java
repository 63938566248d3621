package dev.epic.coordinator.metrics;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.TestData;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.TokenIds;
import dev.epic.transport.ProcessMeters;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/** The coordinator's Prometheus endpoint after real requests over gRPC (tiny-v3, local experts). */
class ServingMetricsTest {
    @Test
    void scrapeShowsRequestsTokensSchedulerGrpcAndJvm() throws Exception {
        ServedModel model = ServedModel.open(TestData.model("tiny-v3"), null, 20_000);
        try (ProcessMeters endpoint = ProcessMeters.open("127.0.0.1", -1);
             CoordinatorServer server = CoordinatorServer.start(model, ExpertBackend.local(),
                     new SchedulerOptions(4, 2, 32, 16L << 20), "127.0.0.1", 0, endpoint.registry())) {
            ManagedChannel channel = NettyChannelBuilder.forTarget(server.target()).usePlaintext().build();
            try {
                var api = GenerationServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
                GenerateRequest req = GenerateRequest.newBuilder()
                        .setTokenIds(TokenIds.newBuilder().addAllIds(java.util.stream.IntStream.range(0, 20)
                                .map(i -> 5 + 3 * i).boxed().toList()))
                        .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(6).setIgnoreEos(true))
                        .build();
                api.generate(req).forEachRemaining(r -> { });
                api.generate(req).forEachRemaining(r -> { });
                assertThrows(StatusRuntimeException.class, () -> api.generate(GenerateRequest.newBuilder()
                        .setTokenIds(TokenIds.newBuilder().addIds(1 << 20)).build()).forEachRemaining(r -> { }));
            } finally {
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
            HttpClient http = HttpClient.newHttpClient();
            HttpResponse<String> r = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + endpoint.port() + "/metrics")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(200, r.statusCode());
            assertTrue(r.headers().firstValue("Content-Type").orElse("").startsWith("text/plain"), r.headers().toString());
            String text = r.body();
            assertEquals(2.0, value(text, "epic_requests_finished_total\\{reason=\"length\"\\}"), text);
            assertEquals(12.0, value(text, "epic_tokens_generation_total"), text);
            assertEquals(40.0, value(text, "epic_tokens_prompt_total"), text);
            assertEquals(40.0, value(text, "epic_prefix_cache_queries_tokens_total"), text);
            assertEquals(16.0, value(text, "epic_prefix_cache_hits_tokens_total"), text); // the second's first block
            // One block: 16 positions x 4 layers x (32 latent + 8 rope) floats.
            assertEquals(16.0 * 4 * (32 + 8) * 4, value(text, "epic_prefix_cache_usage_bytes"), text);
            assertEquals(2.0, value(text, "epic_request_time_to_first_token_seconds_count"), text);
            assertEquals(2.0, value(text, "epic_request_time_per_output_token_seconds_count"), text);
            assertTrue(value(text, "epic_scheduler_steps_total") >= 6, text);
            assertEquals(0, value(text, "epic_scheduler_preemptions_total"), text);
            assertTrue(value(text, "epic_sequences_running") <= 1.0, text); // the last may still be leaving
            assertTrue(text.contains("grpc_server_processing_duration_seconds_count{method=\"Generate\""), text);
            assertTrue(text.contains("statusCode=\"INVALID_ARGUMENT\""), "the refused request counts by status");
            assertTrue(text.contains("jvm_memory_used_bytes"), text);

            HttpResponse<String> other = http.send(HttpRequest.newBuilder(
                    URI.create("http://127.0.0.1:" + endpoint.port() + "/")).build(), HttpResponse.BodyHandlers.ofString());
            assertEquals(404, other.statusCode());
        }
    }

    /** KV cache use as vLLM's kv_cache_usage: what the running sequences hold, against the budget. */
    @Test
    void kvCacheGaugesShowWhatRunningSequencesHold() throws Exception {
        ServedModel model = ServedModel.open(TestData.model("tiny-v3"), null, 20_000);
        SchedulerOptions options = new SchedulerOptions(4, 2, 32, 16L << 20);
        try (ProcessMeters endpoint = ProcessMeters.open("127.0.0.1", -1);
             CoordinatorServer server = CoordinatorServer.start(model, ExpertBackend.local(), options, "127.0.0.1", 0,
                     endpoint.registry())) {
            ManagedChannel channel = NettyChannelBuilder.forTarget(server.target()).usePlaintext().build();
            HttpClient http = HttpClient.newHttpClient();
            URI metrics = URI.create("http://127.0.0.1:" + endpoint.port() + "/metrics");
            try {
                var api = GenerationServiceGrpc.newBlockingStub(channel).withDeadlineAfter(60, TimeUnit.SECONDS);
                // Far more tokens than the test waits for (it would otherwise race the end of the
                // sequence on a busy machine); cancelled once the gauges are read.
                io.grpc.Context.CancellableContext call = io.grpc.Context.current().withCancellation();
                io.grpc.Context previous = call.attach();
                java.util.Iterator<dev.epic.proto.GenerateResponse> stream;
                try {
                    stream = api.generate(GenerateRequest.newBuilder()
                            .setTokenIds(TokenIds.newBuilder().addIds(5).addIds(8).addIds(13))
                            .setSampling(SamplingParams.newBuilder().setTemperature(0).setMaxTokens(19_000).setIgnoreEos(true))
                            .build());
                } finally {
                    call.detach(previous);
                }
                stream.next(); // a token came: its cache is held
                String during = http.send(HttpRequest.newBuilder(metrics).build(), HttpResponse.BodyHandlers.ofString()).body();
                assertEquals(1.0, value(during, "epic_sequences_running"), during);
                assertTrue(value(during, "epic_kv_cache_bytes") > 0, during);
                assertEquals((double) options.kvCacheBytes(), value(during, "epic_kv_cache_budget_bytes"), during);
                call.cancel(null);
                long until = System.nanoTime() + TimeUnit.SECONDS.toNanos(10);
                String after;
                do {
                    Thread.sleep(20);
                    after = http.send(HttpRequest.newBuilder(metrics).build(), HttpResponse.BodyHandlers.ofString()).body();
                } while (value(after, "epic_sequences_running") > 0 && System.nanoTime() < until);
                assertEquals(0.0, value(after, "epic_kv_cache_bytes"), after);
            } finally {
                channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            }
        }
    }

    /** The sample value of the first line starting with {@code series} (a regex). */
    private static double value(String text, String series) {
        Matcher m = Pattern.compile("(?m)^" + series + "(?:\\{[^}]*\\})? (\\S+)$").matcher(text);
        assertTrue(m.find(), "no sample " + series);
        return Double.parseDouble(m.group(1));
    }
}
