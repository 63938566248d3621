package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.model.TestData;
import dev.epic.model.config.ModelConfig;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code epic bench --target} as its own process against a real {@code epic local} (two worker JVMs), with
 * two-batch overlap: its decode steps of two streams call each MoE layer once per micro-batch.
 */
@Timeout(value = 240, unit = TimeUnit.SECONDS)
class BenchTargetIT {
    @Test
    void benchThroughAClusterReportsThroughputAndDispatchCombine() throws Exception {
        Path model = TestData.model("tiny-v3");
        ModelConfig cfg = ModelConfig.load(model);
        int moeLayers = (int) IntStream.range(0, cfg.numHiddenLayers()).filter(cfg::isMoeLayer).count();
        try (EpicLocal cluster = EpicLocal.start("bench-target", "--model", model.toString(), "--expert-workers", "2",
                "--max-batch", "4", "--enable-two-batch-overlap")) {
            Path log = EpicLocal.logFile("bench-target-client");
            Process bench = new ProcessBuilder(EpicLocal.java("bench", "--target", cluster.target, "--batch", "1,2",
                    "--prompt-len", "8", "--gen", "2", "--warmup", "2", "--warmup-seconds", "0.5", "--json"))
                    .redirectError(log.toFile()).start();
            String out = new String(bench.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            assertTrue(bench.waitFor(180, TimeUnit.SECONDS), "bench did not finish");
            assertEquals(0, bench.exitValue(), "epic bench failed: " + Files.readString(log));
            JsonNode j = new ObjectMapper().readTree(out);

            for (String key : List.of("prefill_tok_s", "decode", "ttft_ms", "rss_mb", "bytes_per_token",
                    "bandwidth_gb_s", "roofline_fraction", "dispatch_combine_share", "workers_rss_mb")) {
                assertTrue(j.hasNonNull(key), "missing " + key + " in " + out);
            }
            assertEquals(cluster.target, j.get("target").asText());
            assertEquals(2, j.get("expert_workers").asInt());
            assertEquals("fp32", j.get("kv_cache_dtype").asText()); // the coordinator's, from its Stats
            assertTrue(j.get("two_batch_overlap").asBoolean(), out);
            assertTrue(j.get("prefill_tok_s").asDouble() > 0);
            assertTrue(j.get("ttft_ms").asDouble() > 0);
            assertTrue(j.get("rss_mb").asDouble() > 0 && j.get("workers_rss_mb").asDouble() > 0);
            assertTrue(j.get("bandwidth_gb_s").asDouble() > 0);
            assertTrue(j.get("bytes_per_token").asLong() > 0);
            assertTrue(j.get("roofline_fraction").asDouble() > 0);
            double share = j.get("dispatch_combine_share").asDouble();
            assertTrue(share > 0 && share <= 1, "dispatch+combine share " + share);

            // The prompt went in as one 8-row step, one expert call per MoE layer.
            JsonNode prefill = j.get("prefill");
            assertEquals(1, prefill.get("steps").asInt(), out);
            assertEquals(8.0, prefill.get("rows_per_step").asDouble());
            assertEquals(moeLayers, prefill.get("moe_layer_calls").asInt());

            JsonNode decode = j.get("decode");
            assertEquals(2, decode.size());
            for (int i = 0; i < 2; i++) {
                JsonNode d = decode.get(i);
                int batch = i + 1;
                assertEquals(batch, d.get("batch").asInt());
                assertTrue(d.get("tok_s").asDouble() > 0);
                assertTrue(d.get("tokens").asInt() >= batch * 2, "each stream decoded --gen tokens in the window");
                assertTrue(d.get("itl_p50_ms").asDouble() > 0);
                assertTrue(d.get("itl_p50_ms").asDouble() <= d.get("itl_p99_ms").asDouble());
                // In the window every step decodes all `batch` streams and calls each MoE layer once, or
                // twice with two streams: once per micro-batch of the two-batch overlap.
                assertEquals(batch, d.get("rows_per_step").asDouble(), 1e-9, out);
                long steps = d.get("steps").asLong();
                assertTrue(steps >= 1);
                assertEquals(steps * moeLayers * batch, d.get("moe_layer_calls").asLong());
                double p50 = d.get("dispatch_combine_p50_us").asDouble();
                assertTrue(p50 > 0 && p50 <= d.get("dispatch_combine_p99_us").asDouble());
                assertTrue(p50 <= d.get("layer_p99_us").asDouble());
                assertTrue(d.get("layer_p50_us").asDouble() <= d.get("layer_p99_us").asDouble());
                double s = d.get("dispatch_combine_share").asDouble();
                assertTrue(s > 0 && s <= 1, "share " + s);
            }

            // More streams than the coordinator batches would queue: refused up front, naming the fix.
            Path log2 = EpicLocal.logFile("bench-target-maxbatch-client");
            Process tooBig = new ProcessBuilder(EpicLocal.java("bench", "--target", cluster.target, "--batch", "1,8",
                    "--prompt-len", "4", "--gen", "1", "--warmup-seconds", "0", "--json")).redirectErrorStream(true).redirectOutput(log2.toFile())
                    .start();
            assertTrue(tooBig.waitFor(120, TimeUnit.SECONDS), "bench did not finish");
            String err = Files.readString(log2);
            assertEquals(2, tooBig.exitValue(), err);
            assertTrue(err.contains("batch 8 exceeds the coordinator's max-batch 4"), err);
            assertTrue(err.contains("--max-batch 8"), err);
        }
    }
}
