package dev.epic.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.coordinator.openai.OpenAiServer;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.model.KvCacheDtype;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.Callable;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.atomic.AtomicLong;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code epic batch}: a file of OpenAI Batch API requests run to a file of their answers, as vLLM's
 * {@code run_batch} and OpenAI's Batch API do it. Each input line is {@code {"custom_id", "method":
 * "POST", "url": "/v1/chat/completions" | "/v1/completions", "body"}}; each output line, in input order,
 * is {@code {"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}}. The bodies go
 * through this engine's OpenAI-compatible API (an in-process HTTP server on loopback in front of the
 * coordinator), so a batch answers exactly what the HTTP API would.
 */
@Command(name = "batch", mixinStandardHelpOptions = true,
        description = {"Run a file of OpenAI Batch API requests (JSON Lines) and write their answers in input order.",
            "Lines: {\"custom_id\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\" or \"/v1/completions\", \"body\"}."})
public final class BatchCommand implements Callable<Integer> {
    static final Set<String> URLS = Set.of("/v1/chat/completions", "/v1/completions");
    /** Answers that mean "later": an overloaded coordinator (429) or one not serving yet (503). */
    private static final Set<Integer> RETRIED = Set.of(429, 503);
    private static final int ATTEMPTS = 8;
    /** Requests sent again after a 429 or 503. */
    private final AtomicLong retries = new AtomicLong();

    @Spec
    CommandSpec spec;

    @ArgGroup(exclusive = true, multiplicity = "1")
    ModelOrTarget source;

    @Option(names = {"-i", "--input-file"}, required = true, paramLabel = "FILE", description = "requests, one JSON object a line ('-': stdin)")
    String input;

    @Option(names = {"-o", "--output-file"}, required = true, paramLabel = "FILE", description = "answers, one JSON object a line ('-': stdout)")
    String output;

    @Option(names = "--concurrency", defaultValue = "16", paramLabel = "N",
            description = "requests in flight at once (the coordinator batches them; default ${DEFAULT-VALUE})")
    int concurrency;

    @Option(names = {"--max-batch", "--max-num-seqs"}, defaultValue = "" + SchedulerOptions.DEFAULT_MAX_BATCH, paramLabel = "N",
            description = "with --model: sequences the in-process coordinator decodes together (default ${DEFAULT-VALUE})")
    int maxBatch;

    @Option(names = "--served-model-name", paramLabel = "NAME", arity = "1..*",
            description = "the model id bodies may name (default: the checkpoint directory's name); with several, "
                    + "any of them, as vLLM takes them")
    java.util.List<String> servedModelName;

    @Option(names = "--timeout-s", defaultValue = "3600", paramLabel = "S",
            description = "the most one request may take (default ${DEFAULT-VALUE})")
    long timeoutS;

    /** One input line, checked. */
    record Line(String customId, String url, JsonNode body) {}

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        List<Line> lines;
        OutputStream out;
        try {
            Flags.requirePositive("--concurrency", concurrency);
            Flags.requirePositive("--max-batch", maxBatch);
            Flags.requirePositive("--timeout-s", timeoutS);
            lines = read(input);
            out = open(output); // before the model loads: an unwritable path is one line too
        } catch (IllegalArgumentException | IOException e) {
            err.println("epic batch: " + e.getMessage());
            err.flush();
            return LogitsCommand.BAD_INPUT;
        }
        // In process: as many in flight as asked for, batched as far as the scheduler's batch goes, the rest queued.
        SchedulerOptions d = SchedulerOptions.defaults();
        CoordinatorServer local = null;
        try (out) {
            local = source.startLocal(new SchedulerOptions(maxBatch, Math.max(d.maxQueue(), concurrency),
                    d.prefillBudget(), d.prefixCacheBytes(), d.kvCacheBytes(), d.speculation(), d.priorities()),
                    KvCacheDtype.FP32);
            try (OpenAiServer http = OpenAiServer.start("127.0.0.1", 0, source.target(local),
                    servedModelName == null ? java.util.List.of() : servedModelName, null, OpenAiServer.ALL_ORIGINS, null)) {
                return run(lines, "http://127.0.0.1:" + http.port(), out, err);
            }
        } finally {
            if (local != null) {
                local.close();
            }
        }
    }

    private static OutputStream open(String output) {
        if (output.equals("-")) {
            return new java.io.FilterOutputStream(System.out) {
                @Override
                public void write(byte[] b, int off, int len) throws IOException {
                    out.write(b, off, len); // whole lines, not FilterOutputStream's byte at a time
                }

                @Override
                public void close() throws IOException {
                    flush(); // stdout stays open
                }
            };
        }
        try {
            return Files.newOutputStream(Path.of(output));
        } catch (IOException e) {
            throw new IllegalArgumentException("cannot write " + output + ": " + e);
        }
    }

    /** Reads and checks every line before anything runs: a bad file is one error, not a half-run batch. */
    static List<Line> read(String input) throws IOException {
        var decoder = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        List<Line> lines = new ArrayList<>();
        Set<String> ids = new HashSet<>();
        try (BufferedReader r = new BufferedReader(new InputStreamReader(
                input.equals("-") ? System.in : Files.newInputStream(Path.of(input)), decoder))) {
            String text;
            int number = 0;
            while ((text = r.readLine()) != null) {
                number++;
                if (text.isBlank()) {
                    continue;
                }
                lines.add(line(number, text, ids));
            }
        } catch (CharacterCodingException e) {
            throw new IllegalArgumentException(input + " is not UTF-8 text");
        } catch (java.nio.file.NoSuchFileException e) {
            throw new IllegalArgumentException("no such file: " + input);
        }
        if (lines.isEmpty()) {
            throw new IllegalArgumentException(input + " holds no requests");
        }
        return lines;
    }

    private static Line line(int number, String text, Set<String> ids) {
        JsonNode n;
        try {
            n = JsonLines.MAPPER.readTree(text);
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw new IllegalArgumentException("line " + number + " is not JSON: " + e.getOriginalMessage());
        }
        if (n == null || !n.isObject()) {
            throw new IllegalArgumentException("line " + number + " must be a JSON object");
        }
        String customId = n.path("custom_id").isTextual() ? n.get("custom_id").asText() : null;
        if (customId == null) {
            throw new IllegalArgumentException("line " + number + ": custom_id must be a string");
        }
        if (!ids.add(customId)) { // as OpenAI's Batch API: answers are told apart by it
            throw new IllegalArgumentException("line " + number + ": custom_id '" + customId + "' is used twice");
        }
        String method = n.path("method").asText("");
        if (!method.equals("POST")) {
            throw new IllegalArgumentException("line " + number + ": method must be POST, got '" + method + "'");
        }
        String url = n.path("url").asText("");
        if (!URLS.contains(url)) {
            throw new IllegalArgumentException("line " + number + ": url must be one of " + URLS.stream().sorted().toList()
                    + ", got '" + url + "'");
        }
        JsonNode body = n.get("body");
        if (body == null || !body.isObject()) {
            throw new IllegalArgumentException("line " + number + ": body must be a JSON object");
        }
        if (body.path("stream").asBoolean(false)) {
            throw new IllegalArgumentException("line " + number + ": a batch answers whole responses, so "
                    + "\"stream\": true is not supported");
        }
        return new Line(customId, url, body);
    }

    private int run(List<Line> lines, String base, OutputStream out, PrintWriter err) throws Exception {
        HttpClient client = HttpClient.newBuilder().connectTimeout(Duration.ofSeconds(10)).build();
        Semaphore inFlight = new Semaphore(concurrency);
        AtomicLong done = new AtomicLong();
        AtomicLong failed = new AtomicLong();
        AtomicLong tokens = new AtomicLong();
        long t0 = System.nanoTime();
        List<CompletableFuture<ObjectNode>> answers = new ArrayList<>(lines.size());
        lines.forEach(l -> answers.add(new CompletableFuture<>()));
        try (ExecutorService pool = Executors.newVirtualThreadPerTaskExecutor()) {
            // In input order, each as soon as it and those before it are answered.
            var writer = pool.submit(() -> {
                for (CompletableFuture<ObjectNode> a : answers) {
                    out.write(JsonLines.MAPPER.writeValueAsBytes(a.join()));
                    out.write('\n');
                    out.flush();
                }
                return null;
            });
            for (int i = 0; i < lines.size(); i++) {
                Line l = lines.get(i);
                CompletableFuture<ObjectNode> slot = answers.get(i);
                inFlight.acquire();
                pool.submit(() -> {
                    try {
                        ObjectNode a = answer(client, base, l);
                        if (a.get("error").isNull()) {
                            tokens.addAndGet(a.path("response").path("body").path("usage").path("completion_tokens").asLong());
                        } else {
                            failed.incrementAndGet();
                        }
                        slot.complete(a);
                        long n = done.incrementAndGet();
                        if (n % 100 == 0) {
                            double s = (System.nanoTime() - t0) / 1e9;
                            err.printf("batch: %d/%d done, %d failed, %.1f requests/s, %.1f generated tokens/s%n", n,
                                    lines.size(), failed.get(), n / s, tokens.get() / s);
                            err.flush();
                        }
                    } finally {
                        inFlight.release();
                    }
                });
            }
            writer.get();
        }
        double s = (System.nanoTime() - t0) / 1e9;
        err.printf("batch: %d requests in %.1f s (%d failed, %d sent again after a full queue): %d generated tokens, "
                + "%.1f tokens/s%n", lines.size(), s, failed.get(), retries.get(), tokens.get(), tokens.get() / s);
        err.flush();
        return 0;
    }

    /**
     * One request's output line: the HTTP API's answer as the response body, or its error (vLLM's form:
     * the status code, no body, and the error object). An overloaded coordinator is tried again later.
     */
    private ObjectNode answer(HttpClient client, String base, Line l) {
        ObjectNode o = JsonLines.MAPPER.createObjectNode();
        o.put("id", "batch_req_" + UUID.randomUUID().toString().replace("-", ""));
        o.put("custom_id", l.customId());
        ObjectNode response = o.putObject("response");
        response.put("request_id", "epic-batch-" + UUID.randomUUID().toString().replace("-", ""));
        try {
            HttpRequest req = HttpRequest.newBuilder(URI.create(base + l.url())).timeout(Duration.ofSeconds(timeoutS))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofByteArray(JsonLines.MAPPER.writeValueAsBytes(l.body()))).build();
            HttpResponse<String> r = null;
            for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
                r = client.send(req, HttpResponse.BodyHandlers.ofString());
                if (!RETRIED.contains(r.statusCode()) || attempt == ATTEMPTS - 1) {
                    break;
                }
                retries.incrementAndGet();
                Thread.sleep(Math.min(10_000, 250L << attempt));
            }
            JsonNode body = JsonLines.MAPPER.readTree(r.body());
            response.put("status_code", r.statusCode());
            if (r.statusCode() == 200) {
                response.set("body", body);
                o.putNull("error");
            } else {
                response.putNull("body");
                o.set("error", body.has("error") ? body.get("error") : body);
            }
        } catch (IOException | RuntimeException | InterruptedException e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
            }
            response.put("status_code", 500).putNull("body");
            o.putObject("error").put("message", "request failed: " + e).put("code", 500);
        }
        return o;
    }
}
