package dev.epic.cli;

import static dev.epic.cli.LogitsCommandTest.JSON;
import static dev.epic.cli.LogitsCommandTest.run;
import static dev.epic.cli.LogitsCommandTest.testdata;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import java.util.List;
import org.junit.jupiter.api.Test;

class BenchCommandTest {
    @Test
    void jsonHasTheDocumentedKeys() throws Exception {
        LogitsCommandTest.Run r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--batch", "1,3",
                "--prompt-len", "8", "--gen", "2", "--weights", "q8", "--drafts", "3", "--mtp", "--kv-cache-dtype", "bf16", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode j = JSON.readTree(r.out());
        for (String key : List.of("prefill_tok_s", "decode", "ttft_ms", "rss_mb", "bytes_per_token", "bandwidth_gb_s",
                "roofline_fraction")) {
            assertTrue(j.has(key), "missing " + key + " in " + r.out());
        }
        assertEquals(2, j.get("decode").size());
        assertEquals(3, j.get("decode").get(1).get("batch").asInt());
        for (JsonNode d : j.get("decode")) {
            for (String key : List.of("batch", "tok_s", "itl_p50_ms", "itl_p99_ms", "bytes_per_step", "roofline_tok_s",
                    "roofline_fraction")) {
                assertTrue(d.has(key), "missing decode." + key);
            }
            assertTrue(d.get("tok_s").asDouble() > 0);
        }
        // A step reads each matrix once: batch 1 reads one token's weights, batch 3 more (more distinct
        // experts) but less than three tokens' worth (lm_head, attention, gate and shared expert are shared).
        long perToken = j.get("bytes_per_token").asLong();
        assertEquals(perToken, j.get("decode").get(0).get("bytes_per_step").asLong());
        long batch3 = j.get("decode").get(1).get("bytes_per_step").asLong();
        assertTrue(batch3 > perToken && batch3 < 3 * perToken, batch3 + " vs " + perToken);
        assertTrue(j.get("fma_peak_gflop_s").asDouble() > 0);
        assertTrue(j.get("compute_ceiling_tok_s").asDouble() > 0);
        assertEquals("q8", j.get("weights").asText());
        assertEquals("bf16", j.get("kv_cache_dtype").asText());
        JsonNode spec = j.get("speculative").get(0);
        assertEquals(3, spec.get("drafts").asInt());
        // Every draft kept, a step gives four tokens; none kept, one: the same step time either way.
        assertEquals(4 * spec.get("tok_s_none_kept").asDouble(), spec.get("tok_s_all_kept").asDouble(), 1e-9);
        assertEquals(1e3 / spec.get("step_ms_mean").asDouble(), spec.get("tok_s_none_kept").asDouble(), 1e-9);
        assertEquals("ngram", spec.get("method").asText());
        JsonNode mtp = j.get("speculative").get(1);
        assertEquals("mtp", mtp.get("method").asText());
        assertEquals(1, mtp.get("drafts").asInt());
        assertEquals(2 * mtp.get("tok_s_none_kept").asDouble(), mtp.get("tok_s_all_kept").asDouble(), 1e-9);
        assertTrue(j.get("bytes_per_token").asLong() > 0);
        assertTrue(j.get("roofline_fraction").asDouble() > 0);
    }

    /** --mtp K times K chained MTP drafts a step (--mtp alone: one); a negative K is refused. */
    @Test
    void mtpTakesADraftCount() throws Exception {
        LogitsCommandTest.Run r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--batch", "1",
                "--prompt-len", "8", "--gen", "3", "--mtp", "2", "--json");
        assertEquals(0, r.code(), r.err());
        JsonNode mtp = JSON.readTree(r.out()).get("speculative").get(0);
        assertEquals("mtp", mtp.get("method").asText());
        assertEquals(2, mtp.get("drafts").asInt());
        assertEquals(3 * mtp.get("tok_s_none_kept").asDouble(), mtp.get("tok_s_all_kept").asDouble(), 1e-9);
        r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--mtp", "-1");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("MTP drafts must be >= 0"), r.err());
    }

    @Test
    void badArgumentsFailWithAMessage() {
        LogitsCommandTest.Run r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--weights", "int3");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("auto, bf16, q8 or q4"), r.err());
        r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--kv-cache-dtype", "fp16");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("--kv-cache-dtype must be auto, fp32 or bf16"), r.err());
        r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--batch", "0");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("batch sizes must be >= 1"), r.err());
        r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--drafts", "0");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("draft counts must be >= 1"), r.err());
        r = run(new BenchCommand(), "--target", "127.0.0.1:1", "--drafts", "2");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("--drafts and --mtp are for --model"), r.err());
        r = run(new BenchCommand(), "--model", testdata("tiny-v3-fp8").toString(), "--mtp");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("num_nextn_predict_layers is 0"), r.err());
        r = run(new BenchCommand(), "--batch", "1");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("exactly one of --model DIR (this process) or --target HOST:PORT"), r.err());
        r = run(new BenchCommand(), "--model", testdata("tiny-v3").toString(), "--target", "127.0.0.1:1");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        r = run(new BenchCommand(), "--target", "nowhere");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("--target must be HOST:PORT"), r.err());
        r = run(new BenchCommand(), "--target", "127.0.0.1:1", "--warmup-seconds", "-1");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("warmup-seconds must be >= 0"), r.err());
        r = run(new BenchCommand(), "--target", "127.0.0.1:1", "--batch", "0");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("batch sizes must be >= 1"), r.err());
    }

    @Test
    void unreachableTargetFailsNamingIt() {
        LogitsCommandTest.Run r = run(new BenchCommand(), "--target", "127.0.0.1:1", "--batch", "1", "--json");
        assertEquals(1, r.code());
        assertTrue(r.err().contains("127.0.0.1:1: UNAVAILABLE"), r.err());
    }
}
