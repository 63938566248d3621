package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.VectorOps;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.model.KvCache;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import java.util.List;
import picocli.CommandLine;
import org.junit.jupiter.api.Test;

class LogitsCommandTest {
    static final ObjectMapper JSON = new ObjectMapper();

    static Path testdata(String name) {
        return Path.of(System.getProperty("epic.testdata", "../testdata")).resolve(name);
    }

    record Run(int code, String out, String err) {}

    static Run run(Object command, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        CommandLine cl = new CommandLine(command);
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Run(code, out.toString(), err.toString());
    }

    @Test
    void printsPromptAndGreedyStepLogitsAsJsonLines() throws Exception {
        Path model = testdata("tiny-v3");
        JsonNode golden = JSON.readTree(model.resolve("golden.json").toFile()).get("prompts").get(1);
        StringBuilder ids = new StringBuilder();
        for (JsonNode t : golden.get("tokens")) {
            ids.append(ids.isEmpty() ? "" : ",").append(t.asInt());
        }
        Run r = run(new LogitsCommand(), "--model", model.toString(), "--ids", ids.toString(), "--steps", "2");
        assertEquals(0, r.code(), r.err());
        List<String> lines = r.out().lines().toList();
        assertEquals(3, lines.size());

        // exactly the engine's floats, printed so they parse back bit for bit
        float[][] expected = new float[3][];
        try (Checkpoint ck = Checkpoint.open(model)) {
            Transformer t = Transformer.load(ck);
            KvCache cache = t.newCache();
            expected[0] = t.forward(cache, LogitsCommand.parseIds(ids.toString()));
            for (int k = 1; k < 3; k++) {
                expected[k] = t.forward(cache, VectorOps.argmax(expected[k - 1]));
            }
        }
        for (int k = 0; k < 3; k++) {
            assertTrue(lines.get(k).startsWith("{\"step\": " + k + ", \"token\": "), lines.get(k));
            JsonNode line = JSON.readTree(lines.get(k));
            assertEquals(List.of("step", "token", "logits"), iterable(line.fieldNames()));
            assertEquals(k, line.get("step").asInt());
            assertEquals(golden.get("greedy_tokens").get(k).asInt(), line.get("token").asInt());
            JsonNode logits = line.get("logits");
            assertEquals(expected[k].length, logits.size());
            for (int i = 0; i < logits.size(); i++) {
                assertEquals(expected[k][i], Float.parseFloat(logits.get(i).asText()), 0f);
            }
            JsonNode ref = k == 0 ? golden.get("prefill_logits") : golden.get("step_logits").get(k - 1);
            for (int i = 0; i < ref.size(); i++) {
                assertEquals(ref.get(i).asDouble(), expected[k][i], 5e-5);
            }
        }
    }

    private static List<String> iterable(java.util.Iterator<String> it) {
        List<String> out = new java.util.ArrayList<>();
        it.forEachRemaining(out::add);
        return out;
    }

    @Test
    void badInputGivesOneErrorLineAndExitCode2() {
        String model = testdata("tiny-v3").toString();
        assertBadInput(run(new LogitsCommand(), "--model", model, "--ids", "5,x,4"), "'x'");
        assertBadInput(run(new LogitsCommand(), "--model", model, "--ids", "5,,4"), "--ids");
        assertBadInput(run(new LogitsCommand(), "--model", model, "--ids", "5,2048"), "2048");
        assertBadInput(run(new LogitsCommand(), "--model", model, "--ids", "-1"), "-1");
        assertBadInput(run(new LogitsCommand(), "--model", "/no/such/dir", "--ids", "5"), "/no/such/dir");
        assertBadInput(run(new LogitsCommand(), "--model", model, "--ids", "5", "--steps", "-3"), "--steps");
    }

    static void assertBadInput(Run r, String fragment) {
        assertEquals(2, r.code(), r.err());
        assertEquals("", r.out());
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), r.err());
        assertTrue(lines.getFirst().contains(fragment), r.err());
        assertFalse(r.err().contains("Exception") || r.err().contains("\tat "), r.err());
    }
}
