package dev.epic.coordinator.openai;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.proto.DetokenizeRequest;
import dev.epic.proto.DetokenizeResponse;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.TokenizeRequest;
import dev.epic.proto.TokenizeResponse;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthCheckResponse;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.IOException;
import java.io.OutputStream;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An OpenAI-compatible HTTP front end (what vLLM and SGLang serve) over a coordinator's gRPC API:
 * {@code POST /v1/chat/completions}, {@code POST /v1/completions} (both also as server-sent events
 * with {@code "stream": true}), {@code GET /v1/models}, {@code GET /health}, and vLLM's
 * {@code POST /tokenize} and {@code POST /detokenize}. Every prompt becomes
 * one GenerationService call, so validation, scheduling and errors are the coordinator's; gRPC
 * statuses come back as HTTP statuses (INVALID_ARGUMENT 400, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503).
 * A client that disconnects, streaming or not, cancels its calls, which frees their batch slots.
 */
public final class OpenAiServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(OpenAiServer.class);
    /**
     * Bodies above this are refused (413) before parsing: the coordinator takes gRPC messages up to
     * 4 MiB, and a 128K-token prompt is well under that as text or as ids.
     */
    private static final int MAX_BODY = 4 << 20;
    /** Any origin: vLLM's --allowed-origins default. */
    public static final List<String> ALL_ORIGINS = List.of("*");

    private NettyHttpServer http; // set once in start
    private final ExecutorService executor;
    private final ManagedChannel channel;
    private final GenerationServiceGrpc.GenerationServiceBlockingStub api;
    /** The model ids clients may send, the first the one answers carry; empty: the coordinator's model name. */
    private final List<String> servedNames;
    /** CORS, the API key, and what a request's method and Content-Type must be. */
    private final HttpAccess access;
    private volatile ModelInfoResponse info;
    /** The coordinator's Prometheus text for GET /metrics; null when it keeps none. */
    private final java.util.function.Supplier<String> metrics;
    private volatile int capacity; // 0: not asked yet
    /** Set when the coordinator starts draining: new requests get a 503 that says so. */
    private volatile boolean shuttingDown;
    /** The model object's "created": when this server started (Unix seconds), as vLLM reports it. */
    private final long created = System.currentTimeMillis() / 1000;

    private OpenAiServer(ExecutorService executor, ManagedChannel channel, List<String> servedNames,
            String apiKey, List<String> allowedOrigins, java.util.function.Supplier<String> metrics) {
        this.access = new HttpAccess(apiKey, allowedOrigins);
        this.metrics = metrics;
        this.executor = executor;
        this.channel = channel;
        this.api = GenerationServiceGrpc.newBlockingStub(channel);
        this.servedNames = servedNames;
    }

    /**
     * Binds {@code host:port} (0 = any free port) and serves the coordinator at {@code target}
     * (host:port of its gRPC API). {@code servedName} is the model id clients use; null means the
     * coordinator's model name. With an {@code apiKey}, requests other than /health need
     * {@code Authorization: Bearer <apiKey>} (vLLM's --api-key).
     */
    public static OpenAiServer start(String host, int port, String target, String servedName, String apiKey)
            throws IOException {
        return start(host, port, target, servedName, apiKey, ALL_ORIGINS);
    }

    /**
     * As {@link #start(String, int, String, String, String)}, with the origins browsers may call from
     * ({@code "*"}: any; vLLM's --allowed-origins).
     */
    public static OpenAiServer start(String host, int port, String target, String servedName, String apiKey,
            List<String> allowedOrigins) throws IOException {
        return start(host, port, target, servedName == null ? List.of() : List.of(servedName), apiKey, allowedOrigins,
                null);
    }

    /**
     * As {@link #start(String, int, String, String, String, List)}, with several model ids, as vLLM's
     * {@code --served-model-name} takes them: a request may name any, and answers carry the first (null or
     * empty: the coordinator's model name). It also answers {@code GET /metrics} with {@code metrics} (the
     * coordinator's Prometheus text; null: no /metrics), on the API's port as vLLM does, without the API
     * key (as vLLM's key guards /v1 only), so scrapers need no token.
     */
    public static OpenAiServer start(String host, int port, String target, List<String> servedNames, String apiKey,
            List<String> allowedOrigins, java.util.function.Supplier<String> metrics) throws IOException {
        servedNames = servedNames == null ? List.of() : servedNames;
        for (String name : servedNames) {
            if (name == null || name.isBlank()) {
                throw new IllegalArgumentException("a served model name is blank");
            }
        }
        servedNames = List.copyOf(new java.util.LinkedHashSet<>(servedNames));
        if (apiKey != null && apiKey.isBlank()) {
            throw new IllegalArgumentException("the API key is blank: give a key, or none to serve without one");
        }
        ManagedChannel channel = NettyChannelBuilder.forTarget(target).usePlaintext()
                .maxInboundMessageSize(64 << 20).build();
        ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
        OpenAiServer server = new OpenAiServer(executor, channel, servedNames, apiKey, allowedOrigins, metrics);
        try {
            server.http = NettyHttpServer.start(host, port, MAX_BODY, OpenAiServer::errorBody, server::handle, executor,
                    NettyHttpServer.IDLE_SECONDS, NettyHttpServer.WRITE_TIMEOUT_SECONDS);
        } catch (IOException e) {
            channel.shutdownNow();
            executor.shutdownNow();
            throw new IOException("cannot bind the OpenAI HTTP port " + host + ":" + port + ": " + e.getMessage(), e);
        }
        log.info("OpenAI-compatible API on http://{}:{}/v1 (coordinator {}; {})", host, server.port(), target,
                apiKey != null ? "API key required" : "no API key");
        return server;
    }

    public int port() {
        return http.port();
    }

    /** An answer the HTTP server gives itself (too large, unparseable) as an OpenAI error object. */
    private static byte[] errorBody(int status, String message) {
        try {
            return OpenAiRequests.JSON.writeValueAsBytes(OpenAiResponses.error(
                    new OpenAiError(status, "invalid_request_error", null, message)));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    private void handle(Exchange ex) {
        try (ex) {
            try {
                String origin = access.allowedOrigin(ex);
                if (origin != null) { // on every answer, errors included, so a browser can read them
                    ex.setHeader("Access-Control-Allow-Origin", origin);
                    if (!origin.equals("*")) {
                        ex.addHeader("Vary", "Origin");
                    }
                }
                if (ex.method().equals("OPTIONS")) {
                    HttpAccess.preflight(ex, origin);
                    return;
                }
                route(ex);
            } catch (OpenAiError e) {
                sendJson(ex, e.httpStatus, OpenAiResponses.error(e));
            } catch (StatusRuntimeException e) {
                OpenAiError err = OpenAiError.of(e);
                sendJson(ex, err.httpStatus, OpenAiResponses.error(err));
            } catch (RuntimeException e) {
                log.warn("OpenAI API request {} {} failed", ex.method(), ex.uri(), e);
                if (ex.responseCode() == -1) { // nothing sent yet: the client still gets an answer
                    sendJson(ex, 500, OpenAiResponses.error(new OpenAiError(500, "server_error", null, e.toString())));
                }
            }
        } catch (IOException e) {
            log.debug("HTTP client went away: {}", e.toString());
        }
    }

    private void route(Exchange ex) throws IOException {
        String path = ex.uri().getPath();
        if (path.length() > 1 && path.endsWith("/")) {
            path = path.substring(0, path.length() - 1);
        }
        boolean open = path.equals("/health") || (path.equals("/metrics") && metrics != null); // for probes and scrapers
        if (!open && !access.admits(ex)) {
            ex.setHeader("WWW-Authenticate", "Bearer");
            throw new OpenAiError(401, "authentication_error", null, "a valid API key is required (Authorization: Bearer ...)");
        }
        if (shuttingDown && !open) {
            throw new OpenAiError(503, "service_unavailable", null, "the server is shutting down: send the request "
                    + "to another replica");
        }
        if (ex.method().equals("POST")) {
            HttpAccess.requireJson(ex);
        }
        switch (path) {
            case "/v1/chat/completions" -> {
                HttpAccess.requireMethod(ex, "POST");
                JsonNode body = OpenAiRequests.parse(ex.body());
                try {
                    generate(ex, OpenAiRequests.chat(body), OpenAiResponses.Kind.CHAT);
                } catch (StatusRuntimeException e) { // a chat request's prompt is its messages
                    throw sentAs(body, OpenAiError.of(e)).renamed("prompt", "messages");
                }
            }
            case "/v1/completions" -> {
                HttpAccess.requireMethod(ex, "POST");
                JsonNode body = OpenAiRequests.parse(ex.body());
                try {
                    generate(ex, OpenAiRequests.completion(body), OpenAiResponses.Kind.TEXT);
                } catch (StatusRuntimeException e) {
                    throw sentAs(body, OpenAiError.of(e));
                }
            }
            case "/v1/responses" -> {
                HttpAccess.requireMethod(ex, "POST");
                responses(ex, OpenAiRequests.parse(ex.body()));
            }
            case "/tokenize" -> {
                HttpAccess.requireMethod(ex, "POST");
                JsonNode body = OpenAiRequests.parse(ex.body());
                checkModel(body.path("model").asText(null));
                TokenizeResponse t = api.tokenize(OpenAiRequests.tokenize(body));
                ObjectNode o = OpenAiRequests.JSON.createObjectNode().put("count", t.getTokenIdsCount())
                        .put("max_model_len", modelInfo().getMaxContext());
                t.getTokenIdsList().forEach(o.putArray("tokens")::add);
                if (body.path("return_token_strs").asBoolean(false)) { // vLLM's: the vocabulary's strings
                    t.getTokenStringsList().forEach(o.putArray("token_strs")::add);
                }
                sendJson(ex, 200, o);
            }
            case "/detokenize" -> {
                HttpAccess.requireMethod(ex, "POST");
                JsonNode body = OpenAiRequests.parse(ex.body());
                checkModel(body.path("model").asText(null));
                String text;
                try {
                    text = api.detokenize(OpenAiRequests.detokenize(body)).getText();
                } catch (StatusRuntimeException e) { // vLLM's field is tokens
                    throw OpenAiError.of(e).renamed("token_ids", "tokens");
                }
                sendJson(ex, 200, OpenAiRequests.JSON.createObjectNode().put("prompt", text));
            }
            case "/v1/models" -> {
                HttpAccess.requireMethod(ex, "GET");
                sendJson(ex, 200, models());
            }
            case String p when p.startsWith("/v1/models/") -> { // OpenAI's retrieve model (client.models.retrieve)
                HttpAccess.requireMethod(ex, "GET");
                String id = p.substring("/v1/models/".length());
                checkModel(id);
                sendJson(ex, 200, model(id));
            }
            case "/health" -> {
                HttpAccess.requireMethod(ex, "GET");
                health(ex);
            }
            case "/metrics" -> {
                if (metrics == null) {
                    throw new OpenAiError(404, "not_found_error", null, "no such endpoint: /metrics (the coordinator "
                            + "keeps no Prometheus metrics)");
                }
                HttpAccess.requireMethod(ex, "GET");
                byte[] text = metrics.get().getBytes(java.nio.charset.StandardCharsets.UTF_8);
                ex.setHeader("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
                ex.sendResponseHeaders(200, text.length);
                ex.responseBody().write(text);
            }
            default -> throw new OpenAiError(404, "not_found_error", null, "no such endpoint: " + path);
        }
    }

    /** The served model's id; fetched once from the coordinator, which may start after this server. */
    private String modelName() {
        return modelNames().getFirst();
    }

    /** The ids a request may name, the one answers carry first. */
    private List<String> modelNames() {
        return servedNames.isEmpty() ? List.of(modelInfo().getFingerprint().getName()) : servedNames;
    }

    /** The served model's id (the first); 404 when the request names none of them (null names none). */
    private String checkModel(String requested) {
        List<String> names = modelNames();
        if (requested != null && !names.contains(requested)) {
            throw new OpenAiError(404, "not_found_error", "model", "The model `" + requested + "` does not exist "
                    + "(this server serves " + String.join(", ", names.stream().map(n -> "`" + n + "`").toList()) + ").");
        }
        return names.getFirst();
    }

    private ModelInfoResponse modelInfo() {
        ModelInfoResponse i = info;
        if (i == null) {
            i = api.withDeadlineAfter(10, TimeUnit.SECONDS).modelInfo(ModelInfoRequest.getDefaultInstance());
            info = i;
        }
        return i;
    }

    /**
     * The error naming the field the client sent: the coordinator's response_format may have come as
     * vLLM's guided_json, guided_regex, guided_choice, guided_grammar or structured_outputs.
     */
    private static OpenAiError sentAs(JsonNode body, OpenAiError e) {
        for (String name : new String[] {"guided_json", "guided_regex", "guided_choice", "guided_grammar", "structured_outputs"}) {
            if (body.hasNonNull(name)) {
                return e.renamed("response_format", name);
            }
        }
        return e;
    }

    /** Sequences the coordinator holds at once, running or queued: max-batch + max-queue. */
    private int capacity() {
        int c = capacity;
        if (c == 0) {
            dev.epic.proto.StatsResponse s = api.withDeadlineAfter(10, TimeUnit.SECONDS)
                    .stats(dev.epic.proto.StatsRequest.getDefaultInstance());
            c = s.getMaxBatch() + s.getMaxQueue();
            capacity = c;
        }
        return c;
    }

    /** One model object per served id, as vLLM lists them. */
    private ObjectNode models() {
        ObjectNode o = OpenAiRequests.JSON.createObjectNode().put("object", "list");
        var data = o.putArray("data");
        modelNames().forEach(id -> data.add(model(id)));
        return o;
    }

    private ObjectNode model(String id) {
        return OpenAiRequests.JSON.createObjectNode().put("id", id).put("object", "model").put("created", created)
                .put("owned_by", "epic").put("max_model_len", modelInfo().getMaxContext());
    }

    /**
     * A Generate stream read to its end by a virtual thread as the messages come, and handed out in
     * order: what arrives while the caller reads another prompt's stream waits here, in memory
     * bounded by the request's own max_tokens, instead of in gRPC's buffer.
     */
    private static final class Drained implements Iterator<GenerateResponse> {
        private static final Object END = new Object();
        private final java.util.concurrent.BlockingQueue<Object> queue = new java.util.concurrent.LinkedBlockingQueue<>();
        private Object next;

        Drained(Iterator<GenerateResponse> stream) {
            Thread.ofVirtual().name("epic-http-drain").start(() -> {
                try {
                    stream.forEachRemaining(queue::add);
                    queue.add(END);
                } catch (RuntimeException e) { // the call's status (a refusal, a cancellation): thrown to the reader
                    queue.add(e);
                }
            });
        }

        @Override
        public boolean hasNext() {
            if (next == null) {
                try {
                    next = queue.take();
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                    throw io.grpc.Status.CANCELLED.withDescription("interrupted").withCause(e).asRuntimeException();
                }
            }
            if (next instanceof RuntimeException e) {
                throw e;
            }
            return next != END;
        }

        @Override
        public GenerateResponse next() {
            if (!hasNext()) {
                throw new java.util.NoSuchElementException();
            }
            GenerateResponse r = (GenerateResponse) next;
            next = null;
            return r;
        }
    }

    private void health(Exchange ex) throws IOException {
        HealthCheckResponse.ServingStatus s;
        try {
            s = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(5, TimeUnit.SECONDS)
                    .check(HealthCheckRequest.newBuilder().setService(CoordinatorServer.SERVICE).build()).getStatus();
        } catch (StatusRuntimeException e) {
            s = HealthCheckResponse.ServingStatus.NOT_SERVING;
        }
        ObjectNode o = OpenAiRequests.JSON.createObjectNode().put("status", s.name());
        sendJson(ex, s == HealthCheckResponse.ServingStatus.SERVING ? 200 : 503, o);
    }

    private void generate(Exchange ex, OpenAiRequests.Parsed p, OpenAiResponses.Kind kind) throws IOException {
        String name = checkModel(p.model());
        int n = p.n();
        List<GenerateRequest> requests = p.requests();
        if (requests.size() > 1 && (long) requests.size() * n > capacity()) { // one prompt's n: checked as sampling.n
            throw OpenAiError.badRequest("prompt", requests.size() + " prompts x n = " + n + " are "
                    + (long) requests.size() * n + " sequences; this server holds at most " + capacity()
                    + " at once (max-batch + max-queue): send them in smaller requests");
        }
        OpenAiResponses answer = new OpenAiResponses(kind, name, System.currentTimeMillis() / 1000, p.logprobs(),
                p.includeUsage(), p.promptOnly(), n).oneToolCall(p.oneToolCall()).promptLogprobs(p.promptLogprobs())
                .tokensAsIds(p.tokensAsIds()).continuousUsage(p.request().getContinuousUsage())
                .systemFingerprint(modelInfo().getSystemFingerprint());
        try (Context.CancellableContext call = Context.current().withCancellation()) {
            ex.onDisconnect(() -> call.cancel(new IOException("the HTTP client disconnected")));
            // Every prompt's call starts at once (they batch on the server); all inherit this context,
            // so cancelling it ends them all.
            List<Iterator<GenerateResponse>> streams = new ArrayList<>(requests.size());
            Context previous = call.attach();
            try {
                for (GenerateRequest q : requests) {
                    // Several prompts are read in turn below (first messages, then whole answers), so
                    // each is drained as it comes: an unread stream's full buffer would end it as a
                    // stalled reader's. One prompt keeps gRPC's flow control to the HTTP client.
                    streams.add(requests.size() == 1 ? api.generate(q) : new Drained(api.generate(q)));
                }
            } finally {
                call.detach(previous);
            }
            // Each first message (or refusal) arrives before any byte is sent, so a refused request gets
            // its HTTP status, not a 200 with an error event.
            List<GenerateResponse> firsts = new ArrayList<>(requests.size());
            for (int i = 0; i < requests.size(); i++) {
                firsts.add(streams.get(i).next());
                if (p.echo()) {
                    echo(requests.get(i), firsts.get(i), answer, i * n, n);
                }
                if (p.chatEcho() != null) {
                    answer.echoChat(i * n, n, p.chatEcho());
                }
            }
            if (!p.stream()) {
                for (int i = 0; i < requests.size(); i++) {
                    int offset = i * n;
                    answer.accept(firsts.get(i), offset);
                    streams.get(i).forEachRemaining(r -> answer.accept(r, offset));
                }
                sendJson(ex, 200, answer.complete());
                return;
            }
            ex.setHeader("Content-Type", "text/event-stream; charset=utf-8");
            ex.setHeader("Cache-Control", "no-cache");
            ex.sendResponseHeaders(200, 0);
            OutputStream out = ex.responseBody();
            Streamer streamer = new Streamer(out, answer, call);
            if (requests.size() == 1) {
                streamer.pump(firsts.getFirst(), streams.getFirst(), 0);
            } else { // one reader per prompt, writing whole chunks under the streamer's lock
                List<Thread> readers = new ArrayList<>(requests.size());
                for (int i = 0; i < requests.size(); i++) {
                    int k = i;
                    readers.add(Thread.ofVirtual().start(() -> streamer.pump(firsts.get(k), streams.get(k), k * n)));
                }
                boolean interrupted = false;
                for (Thread t : readers) {
                    while (t.isAlive()) {
                        try {
                            t.join();
                        } catch (InterruptedException e) {
                            interrupted = true;
                            call.cancel(e); // the readers end soon; wait for them before the exchange closes
                        }
                    }
                }
                if (interrupted) {
                    Thread.currentThread().interrupt();
                    throw new IOException("interrupted while streaming");
                }
            }
            streamer.finish(p.includeUsage());
        }
    }

    /**
     * The Responses API: the request's chat equivalent runs as one Generate call, and its answer comes
     * back as a response object, or streamed as Responses events (named server-sent events, no [DONE]).
     */
    private void responses(Exchange ex, JsonNode body) throws IOException {
        try {
            respond(ex, body);
        } catch (OpenAiError e) { // the chat request says max_tokens where the client sent max_output_tokens
            throw e.renamed("max_tokens", "max_output_tokens").renamed("response_format", "text.format");
        } catch (StatusRuntimeException e) {
            throw OpenAiError.of(e).renamed("max_tokens", "max_output_tokens").renamed("prompt", "input")
                    .renamed("response_format", "text.format");
        }
    }

    private void respond(Exchange ex, JsonNode body) throws IOException {
        OpenAiRequests.Parsed p = OpenAiRequests.chat(ResponsesApi.toChat(body));
        String name = checkModel(p.model());
        OpenAiResponses answer = new OpenAiResponses(OpenAiResponses.Kind.CHAT, name, System.currentTimeMillis() / 1000,
                false, false, false, 1).oneToolCall(p.oneToolCall());
        try (Context.CancellableContext call = Context.current().withCancellation()) {
            ex.onDisconnect(() -> call.cancel(new IOException("the HTTP client disconnected")));
            Iterator<GenerateResponse> stream;
            Context previous = call.attach();
            try {
                stream = api.generate(p.request());
            } finally {
                call.detach(previous);
            }
            GenerateResponse first = stream.next(); // a refusal comes before any byte is sent
            if (!p.stream()) {
                answer.accept(first);
                stream.forEachRemaining(answer::accept);
                sendJson(ex, 200, ResponsesApi.response(body, answer.complete()));
                return;
            }
            ex.setHeader("Content-Type", "text/event-stream; charset=utf-8");
            ex.setHeader("Cache-Control", "no-cache");
            ex.sendResponseHeaders(200, 0);
            OutputStream out = ex.responseBody();
            ResponsesApi.Events events = new ResponsesApi.Events(body);
            try {
                for (GenerateResponse r = first; r != null; r = stream.hasNext() ? stream.next() : null) {
                    for (ObjectNode chunk : answer.accept(r)) {
                        for (ObjectNode e : events.chunk(chunk)) {
                            namedEvent(out, e);
                        }
                    }
                }
                for (ObjectNode e : events.finish(answer.complete())) {
                    namedEvent(out, e);
                }
            } catch (StatusRuntimeException e) {
                OpenAiError err = OpenAiError.of(e);
                for (ObjectNode ev : events.fail(err.type, err.getMessage())) {
                    namedEvent(out, ev);
                }
            } catch (IOException e) {
                call.cancel(e); // the client left: free its batch slot
                throw e;
            }
        }
    }

    private static void namedEvent(OutputStream out, ObjectNode e) throws IOException {
        out.write(OpenAiResponses.utf8("event: " + e.get("type").asText() + "\ndata: "
                + OpenAiRequests.JSON.writeValueAsString(e) + "\n\n"));
        out.flush();
    }

    /**
     * Writes the chunks of one or more streams as server-sent events. The first failure ends every
     * stream of the request and is reported as an error event before [DONE]; a client that left
     * (a failed write) cancels the calls, which frees their batch slots.
     */
    private static final class Streamer {
        private final OutputStream out;
        private final OpenAiResponses answer;
        private final Context.CancellableContext call;
        private JsonNode failure;
        private IOException gone;

        Streamer(OutputStream out, OpenAiResponses answer, Context.CancellableContext call) {
            this.out = out;
            this.answer = answer;
            this.call = call;
        }

        void pump(GenerateResponse first, Iterator<GenerateResponse> rest, int firstChoice) {
            try {
                for (GenerateResponse r = first; r != null; r = rest.hasNext() ? rest.next() : null) {
                    synchronized (this) {
                        if (gone != null || failure != null) {
                            return;
                        }
                        for (ObjectNode chunk : answer.accept(r, firstChoice)) {
                            event(out, chunk);
                        }
                    }
                }
            } catch (IOException e) {
                synchronized (this) {
                    gone = e;
                }
                call.cancel(e);
            } catch (StatusRuntimeException e) {
                fail(OpenAiResponses.error(OpenAiError.of(e)));
            } catch (RuntimeException e) {
                log.warn("OpenAI API stream failed", e);
                fail(OpenAiResponses.error(new OpenAiError(500, "server_error", null, e.toString())));
            }
        }

        private void fail(JsonNode error) {
            synchronized (this) {
                if (failure == null && gone == null) {
                    failure = error;
                }
            }
            call.cancel(null); // the request has failed: its other prompts stop too
        }

        /** The usage chunk (when asked and nothing failed), the error event if any, then [DONE]. */
        synchronized void finish(boolean includeUsage) throws IOException {
            if (gone != null) {
                throw gone;
            }
            try {
                if (failure != null) {
                    event(out, failure);
                } else if (includeUsage) {
                    event(out, answer.usageChunk());
                }
                out.write(OpenAiResponses.utf8("data: [DONE]\n\n"));
                out.flush();
            } catch (IOException e) {
                call.cancel(e);
                throw e;
            }
        }
    }

    /**
     * The prompt a completion echoes: its text as given, or decoded from its ids; with logprobs, each
     * prompt token's bytes (the first message carries the ids the model saw). For choices
     * [firstChoice, firstChoice + count).
     */
    private void echo(GenerateRequest req, GenerateResponse first, OpenAiResponses answer, int firstChoice, int count) {
        List<Integer> ids = first.getPromptTokenIdsCount() > 0 ? first.getPromptTokenIdsList()
                : req.hasTokenIds() ? req.getTokenIds().getIdsList() : List.of();
        DetokenizeResponse d = ids.isEmpty() ? DetokenizeResponse.getDefaultInstance()
                : api.detokenize(DetokenizeRequest.newBuilder().addAllTokenIds(ids).build());
        answer.echo(firstChoice, count, req.hasTokenIds() ? d.getText() : req.getText(), d.getTokensList(), ids);
    }

    private static void event(OutputStream out, JsonNode n) throws IOException {
        out.write(OpenAiResponses.utf8("data: " + OpenAiRequests.JSON.writeValueAsString(n) + "\n\n"));
        out.flush();
    }

    private static void sendJson(Exchange ex, int status, JsonNode body) throws IOException {
        byte[] b = OpenAiRequests.JSON.writeValueAsBytes(body);
        ex.setHeader("Content-Type", "application/json");
        ex.sendResponseHeaders(status, b.length);
        ex.responseBody().write(b);
    }

    /**
     * New requests are refused with 503 "shutting down" from now on (the coordinator is draining; its
     * gRPC port takes no new calls), while answers under way go on streaming.
     */
    public void shutDown() {
        shuttingDown = true;
    }

    @Override
    public void close() {
        // New connections stop; answers under way (a closing coordinator ends their streams) get two
        // seconds to be written out before the connections close.
        http.stopAccepting();
        executor.shutdown();
        try {
            executor.awaitTermination(2, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        http.close();
        executor.shutdownNow();
        channel.shutdownNow();
        try {
            channel.awaitTermination(5, TimeUnit.SECONDS);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
