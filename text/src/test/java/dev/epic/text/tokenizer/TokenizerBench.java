package dev.epic.text.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.Golden;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Throughput benchmark (not a test): load time of the shipped tokenizer, encode and decode MB/s (UTF-8 bytes of
 * text per second) on testdata's big texts and on the whole encode.jsonl corpus. Run with
 * {@code java -cp <test classpath> -Depic.testdata=testdata dev.epic.text.tokenizer.TokenizerBench}.
 */
public final class TokenizerBench {
    public static void main(String[] args) {
        for (int i = 0; i < 3; i++) {
            long t0 = System.nanoTime();
            Tokenizer t = Tokenizer.read(java.nio.file.Path.of(System.getProperty("epic.root", "."),
                    "text/src/main/resources/dev/epic/text/deepseek-v3/tokenizer.json.gz"), TokenizerConfig.deepSeekV3());
            System.out.printf("load tokenizer.json.gz #%d: %.0f ms (%d ids)%n", i + 1, (System.nanoTime() - t0) / 1e6,
                    t.size());
        }
        List<String> names = new ArrayList<>();
        List<String> texts = new ArrayList<>();
        StringBuilder corpus = new StringBuilder();
        for (JsonNode line : Golden.lines("encode.jsonl")) {
            corpus.append(line.get("text").asText());
            if ("big".equals(line.get("cat").asText())) {
                names.add(line.get("id").asText());
                texts.add(line.get("text").asText());
            }
        }
        names.add("encode.jsonl concatenated");
        texts.add(corpus.toString());
        for (int i = 0; i < names.size(); i++) {
            String text = texts.get(i);
            Tokenizer cold = Tokenizer.read(java.nio.file.Path.of(System.getProperty("epic.root", "."),
                    "text/src/main/resources/dev/epic/text/deepseek-v3/tokenizer.json.gz"), TokenizerConfig.deepSeekV3());
            double mb = text.getBytes(StandardCharsets.UTF_8).length / 1e6;
            long c0 = System.nanoTime();
            int[] ids = cold.encode(text);
            double coldMs = (System.nanoTime() - c0) / 1e6;
            // Warm up, then time: encode (piece cache warm) and decode.
            for (int w = 0; w < 20; w++) {
                cold.encode(text);
                cold.decode(ids);
            }
            int reps = Math.max(5, (int) (20 / mb));
            long e0 = System.nanoTime();
            for (int r = 0; r < reps; r++) {
                cold.encode(text);
            }
            double encSec = (System.nanoTime() - e0) / 1e9;
            long d0 = System.nanoTime();
            for (int r = 0; r < reps; r++) {
                cold.decode(ids);
            }
            double decSec = (System.nanoTime() - d0) / 1e9;
            System.out.printf("%-28s %8.1f KB %7d ids | first encode (cold cache) %7.1f ms | encode %6.1f MB/s | "
                            + "decode %7.1f MB/s%n", names.get(i), mb * 1000, ids.length, coldMs,
                    mb * reps / encSec, mb * reps / decSec);
        }
    }
}
