package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.openai.OpenAiServer;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code epic batch} against an in-process coordinator on tiny-v3 (token-id prompts: its vocabulary is
 * 2,048 ids): OpenAI Batch API lines in, answers out in input order, each the HTTP API's own answer to
 * its body; a request the API refuses is that line's error; a bad file is refused before anything runs.
 */
class BatchCommandTest {
    private static final Path TINY = LogitsCommandTest.testdata("tiny-v3");
    private static final ObjectMapper JSON = new ObjectMapper();
    private static CoordinatorServer coordinator;
    private static OpenAiServer http;

    @BeforeAll
    static void start() throws Exception {
        coordinator = CoordinatorServer.start(ServedModel.open(TINY, null, 0), ExpertBackend.local(),
                SchedulerOptions.defaults(), "127.0.0.1", 0);
        http = OpenAiServer.start("127.0.0.1", 0, coordinator.target(), null, null);
    }

    @AfterAll
    static void stop() {
        http.close();
        coordinator.close();
    }

    private record Run(int code, String err) {}

    private static Run batch(String... args) {
        StringWriter err = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(new StringWriter()));
        cl.setErr(new PrintWriter(err, true));
        return new Run(cl.execute(args), err.toString());
    }

    /** A greedy completion of prompt ids {@code seed}.. as a body, or one with a bad temperature. */
    private static String body(int seed, boolean bad) {
        return "{\"prompt\": [" + (seed % 2000 + 3) + ", " + (seed * 7 % 2000 + 5) + ", 42], \"max_tokens\": " + (2 + seed % 4)
                + ", \"temperature\": " + (bad ? "-1" : "0") + ", \"logprobs\": 1}";
    }

    private static JsonNode direct(String url, String body) throws Exception {
        HttpResponse<String> r = HttpClient.newHttpClient().send(HttpRequest.newBuilder(
                URI.create("http://127.0.0.1:" + http.port() + url)).header("Content-Type", "application/json")
                .POST(HttpRequest.BodyPublishers.ofString(body)).build(), HttpResponse.BodyHandlers.ofString());
        return JSON.readTree(r.body());
    }

    @Test
    void answersComeInInputOrderEachTheApisOwn(@TempDir Path dir) throws Exception {
        List<String> lines = new ArrayList<>();
        int n = 12;
        for (int i = 0; i < n; i++) {
            lines.add("{\"custom_id\": \"req-" + i + "\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": "
                    + body(i, i == 5) + "}");
        }
        lines.add(6, ""); // blank lines are skipped
        Path in = Files.write(dir.resolve("in.jsonl"), lines);
        Path out = dir.resolve("out.jsonl");
        Run r = batch("batch", "--target", coordinator.target(), "-i", in.toString(), "-o", out.toString(),
                "--concurrency", "3");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("batch: 12 requests in") && r.err().contains("(1 failed, "), r.err());
        List<String> answers = Files.readAllLines(out);
        assertEquals(n, answers.size());
        for (int i = 0; i < n; i++) {
            JsonNode a = JSON.readTree(answers.get(i));
            assertEquals("req-" + i, a.get("custom_id").asText());
            assertTrue(a.get("id").asText().startsWith("batch_req_"));
            JsonNode response = a.get("response");
            assertFalse(response.get("request_id").asText().isEmpty());
            if (i == 5) {
                assertEquals(400, response.get("status_code").asInt(), a.toString());
                assertTrue(response.get("body").isNull());
                assertEquals("temperature", a.get("error").get("param").asText(), a.toString());
                continue;
            }
            assertEquals(200, response.get("status_code").asInt(), a.toString());
            assertTrue(a.get("error").isNull());
            JsonNode expected = direct("/v1/completions", body(i, false));
            JsonNode got = response.get("body");
            assertEquals(expected.get("choices"), got.get("choices"), "req-" + i);
            assertEquals(expected.get("usage"), got.get("usage"), "req-" + i);
        }
    }

    /**
     * More requests at once than a coordinator of one batch slot and one queue place takes: the ones it
     * refuses (429) are sent again until they run, and every line is answered.
     */
    @Test
    void aFullQueueIsWaitedOut(@TempDir Path dir) throws Exception {
        try (CoordinatorServer small = CoordinatorServer.start(ServedModel.open(TINY, null, 0), ExpertBackend.local(),
                new SchedulerOptions(1, 1, 256), "127.0.0.1", 0)) {
            List<String> lines = new ArrayList<>();
            for (int i = 0; i < 6; i++) {
                lines.add("{\"custom_id\": \"q" + i + "\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": "
                        + "{\"prompt\": [5, 6, " + (7 + i) + "], \"max_tokens\": 40, \"ignore_eos\": true}}");
            }
            Path in = Files.write(dir.resolve("in.jsonl"), lines);
            Path out = dir.resolve("out.jsonl");
            Run r = batch("batch", "--target", small.target(), "-i", in.toString(), "-o", out.toString(),
                    "--concurrency", "6");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("(0 failed, ") && !r.err().contains(" 0 sent again"), r.err());
            for (String a : Files.readAllLines(out)) {
                assertEquals(200, JSON.readTree(a).get("response").get("status_code").asInt(), a);
                assertEquals(40, JSON.readTree(a).get("response").get("body").get("usage").get("completion_tokens").asInt());
            }
        }
    }

    @Test
    void theModelFlagRunsTheBatchInProcess(@TempDir Path dir) throws Exception {
        Path in = Files.writeString(dir.resolve("in.jsonl"), "{\"custom_id\": \"x\", \"method\": \"POST\", "
                + "\"url\": \"/v1/completions\", \"body\": " + body(3, false) + "}\n");
        Path out = dir.resolve("out.jsonl");
        Run r = batch("batch", "--model", TINY.toString(), "-i", in.toString(), "-o", out.toString(), "--max-batch", "4");
        assertEquals(0, r.code(), r.err());
        JsonNode a = JSON.readTree(Files.readString(out));
        assertEquals(direct("/v1/completions", body(3, false)).get("choices"), a.get("response").get("body").get("choices"));
    }

    /** A bad file is one line on stderr naming the line, exit code 2, and no output: nothing ran. */
    @Test
    void aBadFileIsRefusedBeforeAnythingRuns(@TempDir Path dir) throws Exception {
        String ok = "{\"custom_id\": \"a\", \"method\": \"POST\", \"url\": \"/v1/completions\", \"body\": " + body(1, false) + "}";
        String[][] cases = {
            {ok + "\n" + ok, "line 2: custom_id 'a' is used twice"},
            {ok.replace("/v1/completions", "/v1/embeddings"), "line 1: url must be one of"},
            {ok.replace("\"POST\"", "\"GET\""), "line 1: method must be POST"},
            {ok.replace("\"prompt\"", "\"stream\": true, \"prompt\""), "\"stream\": true is not supported"},
            {"\n{not json", "line 2 is not JSON"},
            {ok.replace("\"a\"", "7"), "line 1: custom_id must be a string"},
            {"\n\n", "holds no requests"},
        };
        for (String[] c : cases) {
            Path in = Files.writeString(dir.resolve("bad.jsonl"), c[0]);
            Path out = dir.resolve("never.jsonl");
            Run r = batch("batch", "--target", coordinator.target(), "-i", in.toString(), "-o", out.toString());
            assertEquals(2, r.code(), r.err());
            assertTrue(r.err().startsWith("epic batch: ") && r.err().contains(c[1]), r.err());
            assertEquals(1, r.err().lines().count(), r.err());
            assertFalse(Files.exists(out), "nothing written for " + c[1]);
        }
        Run noBatch = batch("batch", "--model", TINY.toString(), "-i", dir.resolve("none.jsonl").toString(), "-o", "-",
                "--max-batch", "0");
        assertEquals(2, noBatch.code());
        assertTrue(noBatch.err().contains("--max-batch"), noBatch.err());
        Path ok1 = Files.writeString(dir.resolve("ok.jsonl"), ok);
        Run unwritable = batch("batch", "--target", coordinator.target(), "-i", ok1.toString(), "-o",
                dir.resolve("no/such/dir/out.jsonl").toString());
        assertEquals(2, unwritable.code());
        assertTrue(unwritable.err().startsWith("epic batch: cannot write "), unwritable.err());
        assertEquals(1, unwritable.err().lines().count(), unwritable.err());
        Run missing = batch("batch", "--target", coordinator.target(), "-i", dir.resolve("none.jsonl").toString(),
                "-o", "-");
        assertEquals(2, missing.code());
        assertTrue(missing.err().contains("no such file"), missing.err());
    }
}
