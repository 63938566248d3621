package dev.epic.coordinator.api;

import com.google.protobuf.ByteString;
import dev.epic.coordinator.ExpertBackend;
import dev.epic.coordinator.ServedModel;
import dev.epic.coordinator.metrics.ServingMetrics;
import dev.epic.coordinator.scheduler.GenerationTask;
import dev.epic.coordinator.scheduler.KvBudgetException;
import dev.epic.coordinator.scheduler.LogitsTask;
import dev.epic.coordinator.scheduler.QueueFullException;
import dev.epic.coordinator.scheduler.Scheduler;
import dev.epic.proto.DetokenizeRequest;
import dev.epic.proto.DetokenizeResponse;
import dev.epic.proto.FinishReason;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.ResponseFormat;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LogitsRequest;
import dev.epic.proto.LogitsResponse;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.StepLogits;
import dev.epic.proto.TokenizeRequest;
import dev.epic.proto.TokenizeResponse;
import dev.epic.proto.Tool;
import dev.epic.proto.ToolCall;
import dev.epic.proto.ToolChoice;
import dev.epic.proto.TokenLogprob;
import dev.epic.proto.TopLogprob;
import dev.epic.proto.Usage;
import dev.epic.text.constrain.JsonSchema;
import dev.epic.text.constrain.Grammar;
import dev.epic.text.constrain.TextPattern;
import dev.epic.text.constrain.ToolCallGrammar;
import dev.epic.text.generate.Delta;
import dev.epic.text.generate.Generation;
import dev.epic.text.generate.GenerationOptions;
import dev.epic.text.output.ReasoningMode;
import dev.epic.text.sampling.InvalidSamplingException;
import dev.epic.text.sampling.Logprobs;
import dev.epic.text.sampling.SamplingParams;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.CancellationException;
import java.util.concurrent.CompletionException;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The public GenerationService: maps requests to scheduled sequences and their deltas back to
 * responses. Transport only: prompts are built by {@link PromptBuilder}, batching is the
 * {@link Scheduler}'s, text handling is {@link Generation}'s.
 */
public final class GenerationServiceImpl extends GenerationServiceGrpc.GenerationServiceImplBase {
    private static final Logger log = LoggerFactory.getLogger(GenerationServiceImpl.class);

    /**
     * Most bytes of logits one Logits answer may hold: it is built whole, in the heap, twice over.
     * 256 MiB is 500 steps of DeepSeek-V3's vocabulary, far past what the RPC is for (checking logits).
     */
    static final long LOGITS_BYTES = Math.min(Runtime.getRuntime().maxMemory() / 16, 256L << 20);

    /**
     * A stream whose buffer stays full this long has its generation stopped: its client reads nothing
     * (or less than comes), and the messages would pile up in the server without bound. As the HTTP
     * API's write timeout.
     */
    public static final Duration STALLED_READER = Duration.ofSeconds(60);

    private final long stalledReaderNanos;
    private final ServedModel model;
    private final Scheduler scheduler;
    private final ExpertBackend experts;
    private final PromptBuilder prompts;
    /** The chat template handles thinking blocks: a reasoning model (R1), which may think before a constrained answer. */
    private final boolean reasoningModel;
    private final String modelType;
    private final StatsReport stats;
    private final ServingMetrics metrics;
    /** KV cache bytes one position takes: announced budgets over it give sequence lengths. */
    private final long kvBytesPerPosition;

    public GenerationServiceImpl(ServedModel model, Scheduler scheduler, ExpertBackend experts, ServingMetrics metrics) {
        this(model, scheduler, experts, metrics, STALLED_READER);
    }

    /** @param stalledReader how long a Generate stream may take none of its messages before it is ended */
    public GenerationServiceImpl(ServedModel model, Scheduler scheduler, ExpertBackend experts, ServingMetrics metrics,
            Duration stalledReader) {
        this(model, scheduler, experts, metrics, stalledReader, () -> false);
    }

    /** @param warmingUp whether the forward warm-up is asked for and not over (Stats.warming_up) */
    public GenerationServiceImpl(ServedModel model, Scheduler scheduler, ExpertBackend experts, ServingMetrics metrics,
            Duration stalledReader, java.util.function.BooleanSupplier warmingUp) {
        this.stalledReaderNanos = stalledReader.toNanos();
        this.model = model;
        this.metrics = metrics;
        this.scheduler = scheduler;
        this.experts = experts;
        this.prompts = new PromptBuilder(model);
        this.reasoningModel = prompts.reasoningTemplate();
        this.modelType = ModelType.of(model.directory());
        this.stats = new StatsReport(scheduler, experts, model.attention(), warmingUp);
        this.kvBytesPerPosition = model.transformer().kvBytesPerPosition();
    }

    @Override
    public void generate(GenerateRequest req, StreamObserver<GenerateResponse> out) {
        ServerCallStreamObserver<GenerateResponse> call = (ServerCallStreamObserver<GenerateResponse>) out;
        String id = req.getRequestId().isEmpty() ? "req-" + UUID.randomUUID().toString().substring(0, 8) : req.getRequestId();
        long arrival = System.nanoTime();
        try {
            Prompt prompt = prompt(req);
            SamplingParams params = sampling(req.getSampling(), defaultMaxTokens(prompt.ids().length));
            requireContextHolds(prompt.ids().length, params.maxTokens());
            requireAWorkerHolds(prompt.ids().length, params.maxTokens());
            int n = samples(req.getSampling());
            String badPriority = scheduler.options().priorityRefusal(req.getPriority());
            if (badPriority != null) {
                throw FieldViolation.invalid("priority", badPriority);
            }
            GenerationOptions options = outputOptions(req, prompt); // once: a schema is compiled here
            if (req.hasBeamSearch()) {
                beamSearch(req, call, id, arrival, prompt, params, n, options);
                return;
            }
            Call c = new Call(call, id, n, stalledReaderNanos);
            for (int i = 0; i < n; i++) {
                // Sample i draws from seed + i: reproducible, and each sample different.
                SamplingParams p = i == 0 || params.seed().isEmpty() ? params
                        : params.toBuilder().seed(params.seed().getAsLong() + i).build();
                Generation generation = new Generation(model.tokenizer(), prompt.ids(), p, options);
                c.tasks.add(new GenerationTask(prompt.ids(), generation, new StreamSink(c, i, arrival, prompt.ids(), p.promptLogprobs() >= 0, req.getContinuousUsage()),
                        n > 1 ? c : null, req.getPriority()));
            }
            requireWorkers(); // after every check of the request: a bad one is 400 even while workers are missing
            call.setOnCancelHandler(() -> {
                c.tasks.forEach(GenerationTask::cancel);
                scheduler.wake();
            });
            scheduler.submitAll(c.tasks);
            log.debug("{}: {} prompt tokens queued, {} sample(s)", id, prompt.ids().length, n);
        } catch (StatusRuntimeException e) { // among them UNAVAILABLE from a scheduler shut down or failed
            out.onError(e);
        } catch (QueueFullException e) {
            out.onError(Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage()).asRuntimeException());
        } catch (InvalidSamplingException e) { // checked against the vocabulary by the Generation
            out.onError(FieldViolation.invalid("sampling." + e.field(), e.reason()));
        } catch (KvBudgetException e) {
            out.onError(FieldViolation.invalid(e.field(), e.getMessage()));
        } catch (IllegalArgumentException e) {
            out.onError(PromptBuilder.invalid(e.getMessage()));
        }
    }

    /**
     * vLLM's beam search ({@link BeamSearch}): each step's beams run as prompt-logits sequences through the
     * scheduler (their shared prefixes from the prefix cache); then the best {@code width} are replayed
     * through the output pipeline (text, reasoning split, tool calls, stop strings) as choices, best first.
     */
    private void beamSearch(GenerateRequest req, ServerCallStreamObserver<GenerateResponse> call, String id, long arrival,
            Prompt prompt, SamplingParams params, int width, GenerationOptions options) {
        dev.epic.proto.SamplingParams s = req.getSampling();
        String unsupported = s.hasLogprobs() ? "sampling.logprobs" : s.hasPromptLogprobs() ? "sampling.prompt_logprobs"
                : constrained(req) ? (req.getResponseFormat().getType() != ResponseFormat.Type.TEXT ? "response_format"
                        : "tool_choice")
                : s.getLogitBiasCount() > 0 ? "sampling.logit_bias"
                : s.getAllowedTokenIdsCount() > 0 ? "sampling.allowed_token_ids"
                : s.getPresencePenalty() != 0 ? "sampling.presence_penalty"
                : s.getFrequencyPenalty() != 0 ? "sampling.frequency_penalty"
                : s.hasRepetitionPenalty() && s.getRepetitionPenalty() != 1 ? "sampling.repetition_penalty"
                : s.getMinTokens() > 0 ? "sampling.min_tokens" : null;
        if (unsupported != null) {
            throw FieldViolation.invalid(unsupported, "not supported with beam_search (beams follow the model's own "
                    + "log-probabilities)");
        }
        double lengthPenalty = req.getBeamSearch().hasLengthPenalty() ? req.getBeamSearch().getLengthPenalty() : 1.0;
        if (!Double.isFinite(lengthPenalty)) {
            throw FieldViolation.invalid("beam_search.length_penalty", "must be a finite number, got " + lengthPenalty);
        }
        requireWorkers();
        Call c = new Call(call, id, width, stalledReaderNanos);
        List<LogitsTask> inFlight = new java.util.concurrent.CopyOnWriteArrayList<>();
        java.util.concurrent.atomic.AtomicBoolean gone = new java.util.concurrent.atomic.AtomicBoolean();
        call.setOnCancelHandler(() -> {
            gone.set(true);
            inFlight.forEach(LogitsTask::cancel);
            scheduler.wake();
        });
        Generation probe = new Generation(model.tokenizer(), prompt.ids(), params, options);
        java.util.function.IntPredicate eos = params.ignoreEos() ? t -> false : probe::isEos;
        Thread.ofVirtual().name("beam-search-" + id).start(() -> {
            int[] cached = {-1};
            try {
                List<BeamSearch.Beam> beams = BeamSearch.search(prompt.ids(), width, params.maxTokens(), lengthPenalty, eos,
                        model.tokenizer().size(), sequences -> {
                            if (gone.get()) {
                                throw new java.util.concurrent.CancellationException("the client went away");
                            }
                            List<LogitsTask> tasks = sequences.stream().map(q -> new LogitsTask(q, 0)).toList();
                            inFlight.clear();
                            inFlight.addAll(tasks);
                            scheduler.submitAll(tasks);
                            List<float[]> next = new ArrayList<>(tasks.size());
                            for (LogitsTask t : tasks) {
                                next.add(t.result().get().logits().getFirst());
                            }
                            if (cached[0] < 0) {
                                cached[0] = tasks.getFirst().cachedPromptTokens();
                            }
                            return next;
                        });
                for (int i = 0; i < beams.size(); i++) {
                    BeamSearch.Beam beam = beams.get(i);
                    Generation g = new Generation(model.tokenizer(), prompt.ids(), params, options);
                    StreamSink sink = new StreamSink(c, i, arrival, prompt.ids(), false, req.getContinuousUsage());
                    sink.promptCached(Math.max(0, cached[0]));
                    for (int t : beam.tokens()) {
                        Delta d = g.accept(t);
                        sink.delta(d);
                        if (d.finished()) {
                            break;
                        }
                    }
                    // A beam ended by EOS ends on that token, as a sampled answer would; a running beam has
                    // max_tokens tokens and has ended on the last (LENGTH), so cancel() is only a safeguard.
                    if (!g.finished()) {
                        sink.delta(beam.completed() ? g.accept(beam.end()) : g.cancel());
                    }
                }
                for (int i = beams.size(); i < width; i++) { // fewer beams than asked: a vocabulary that small
                    new StreamSink(c, i, arrival, prompt.ids(), false, false).delta(
                            new Generation(model.tokenizer(), prompt.ids(), params, options).cancel());
                }
            } catch (java.util.concurrent.CancellationException e) {
                log.debug("{}: beam search cancelled", id);
                metrics.cancelled();
                if (!gone.get()) { // the scheduler cancelled its sequences: it is shutting down
                    c.fail(Status.UNAVAILABLE.withDescription("the server stopped during the beam search")
                            .asRuntimeException());
                }
            } catch (QueueFullException e) {
                c.fail(Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage()).asRuntimeException());
            } catch (java.util.concurrent.ExecutionException e) {
                c.fail(toStatus(e.getCause()));
            } catch (Exception e) {
                c.fail(toStatus(e));
            }
        });
        log.debug("{}: beam search of width {} over {} prompt tokens", id, width, prompt.ids().length);
    }

    /** sampling.n, at least 1 and at most what the scheduler can ever hold at once. */
    private int samples(dev.epic.proto.SamplingParams p) {
        if (!p.hasN()) {
            return 1;
        }
        long n = Integer.toUnsignedLong(p.getN());
        int max = scheduler.options().maxBatch() + scheduler.options().maxQueue();
        if (n < 1 || n > max) {
            throw FieldViolation.invalid("sampling.n", "must be in [1, " + max + "] (max-batch + max-queue of this "
                    + "server), got " + n);
        }
        return (int) n;
    }

    /**
     * One Generate call and its samples. The sinks run on the engine thread one at a time, so the
     * counts need no lock; the call completes once every sample has ended, or fails with the first failure.
     */
    private static final class Call {
        final ServerCallStreamObserver<GenerateResponse> call;
        final String id;
        final List<GenerationTask> tasks = new ArrayList<>();
        private final long stalledReaderNanos;
        private int running;
        private boolean closed;
        private long stalledSince; // 0: the client takes what is sent

        Call(ServerCallStreamObserver<GenerateResponse> call, String id, int samples, long stalledReaderNanos) {
            this.call = call;
            this.id = id;
            this.running = samples;
            this.stalledReaderNanos = stalledReaderNanos;
        }

        void send(GenerateResponse r, boolean last) {
            if (closed || call.isCancelled()) {
                return;
            }
            // Not ready: gRPC's buffer for this stream is full because the client reads nothing.
            if (call.isReady()) {
                stalledSince = 0;
            } else if (stalledSince == 0) {
                stalledSince = System.nanoTime();
            } else if (System.nanoTime() - stalledSince > stalledReaderNanos) {
                String why = "the client took too few messages for " + stalledReaderNanos / 1_000_000_000L
                        + " s (the stream's buffer stayed full): generation stopped";
                log.info("{}: {}", id, why);
                fail(Status.CANCELLED.withDescription(why).asRuntimeException());
                return;
            }
            try {
                call.onNext(r);
                if (last && --running == 0) {
                    closed = true;
                    call.onCompleted();
                }
            } catch (StatusRuntimeException | IllegalStateException e) {
                log.debug("{}: client went away: {}", id, e.getMessage()); // cancelled between check and send
            }
        }

        /** The first failure ends the call; the other samples are cancelled. */
        void fail(StatusRuntimeException error) {
            if (closed || call.isCancelled()) {
                return;
            }
            closed = true;
            tasks.forEach(GenerationTask::cancel);
            try {
                call.onError(error);
            } catch (IllegalStateException e) {
                log.debug("{}: could not report failure: {}", id, e.getMessage());
            }
        }
    }

    /** How the output is parsed: reasoning split and tool calls, unless the request wants it raw. */
    private GenerationOptions outputOptions(GenerateRequest req, Prompt prompt) {
        GenerationOptions o = GenerationOptions.defaults().withMaxContextLength(model.maxContext())
                .withLogitsSize(model.config().vocabSize());
        ResponseFormat.Type format = req.getResponseFormat().getType();
        ResponseFormat rf = req.getResponseFormat();
        try {
            o = switch (format) {
                case JSON_OBJECT -> o.withParseToolCalls(false).withJsonSchema(JsonSchema.ANY_OBJECT);
                case JSON_SCHEMA -> o.withParseToolCalls(false).withJsonSchema(JsonSchema.compile(rf.getJsonSchema()));
                case REGEX -> {
                    if (rf.getRegex().isEmpty()) {
                        throw new IllegalArgumentException("REGEX needs a pattern");
                    }
                    yield o.withParseToolCalls(false).withTextLanguage(TextPattern.regex(rf.getRegex()));
                }
                case CHOICE -> o.withParseToolCalls(false).withTextLanguage(TextPattern.choice(rf.getChoicesList()));
                case GRAMMAR -> {
                    if (rf.getGrammar().isBlank()) {
                        throw new IllegalArgumentException("GRAMMAR needs a grammar");
                    }
                    yield o.withParseToolCalls(false).withTextLanguage(Grammar.compile(rf.getGrammar()));
                }
                case TEXT -> o;
                default -> throw new IllegalArgumentException("type " + rf.getTypeValue() + " is not known");
            };
        } catch (IllegalArgumentException e) {
            throw FieldViolation.invalid("response_format", switch (format) {
                case JSON_SCHEMA -> "json_schema: ";
                case REGEX -> "regex (guided_regex): ";
                case CHOICE -> "choices (guided_choice): ";
                case GRAMMAR -> "grammar (guided_grammar): ";
                default -> "";
            } + e.getMessage());
        }
        ToolChoice.Mode choice = req.getToolChoice().getMode();
        if (choice == ToolChoice.Mode.REQUIRED || choice == ToolChoice.Mode.FUNCTION) {
            o = o.withToolCalls(forcedCalls(req));
        } else if (choice == ToolChoice.Mode.NONE) {
            o = o.withParseToolCalls(false);
        } else if (choice != ToolChoice.Mode.AUTO) {
            throw PromptBuilder.invalid("tool_choice.mode " + req.getToolChoice().getModeValue() + " is not known");
        }
        boolean constrained = o.constrained();
        ReasoningMode thinkFirst = thinkFirst(constrained, prompt.reasoning(),
                req.hasEnableThinking() && req.getEnableThinking(),
                req.hasChat() ? prompts.template(req.getChatTemplate()).reasoning() : reasoningModel);
        o = o.withThinkFirst(thinkFirst);
        if (req.getRawOutput()) {
            return o.withReasoning(ReasoningMode.NONE).withParseToolCalls(false);
        }
        o = o.withReasoning(constrained && thinkFirst == ReasoningMode.NONE ? ReasoningMode.NONE : prompt.reasoning());
        return req.hasParseToolCalls() && !req.getParseToolCalls() ? o.withParseToolCalls(false) : o;
    }

    /**
     * Where a constrained answer starts: after the thinking block the prompt opened (OPEN); after one
     * the output must open (DETECT), when thinking is asked for and the model is a reasoning one whose
     * prompt leaves the block to it; otherwise at once (NONE), as vLLM ignores the switch for a model
     * without a reasoning parser.
     */
    static ReasoningMode thinkFirst(boolean constrained, ReasoningMode prompt, boolean asked, boolean reasoningModel) {
        if (!constrained) {
            return ReasoningMode.NONE;
        }
        if (prompt == ReasoningMode.OPEN) {
            return ReasoningMode.OPEN;
        }
        return asked && reasoningModel && prompt == ReasoningMode.DETECT ? ReasoningMode.DETECT : ReasoningMode.NONE;
    }

    /** The grammar of a forced tool choice: calls to the request's tools (or the named one) with valid arguments. */
    private ToolCallGrammar forcedCalls(GenerateRequest req) {
        ToolChoice choice = req.getToolChoice();
        String what = "tool_choice " + choice.getMode();
        if (req.getResponseFormat().getType() != ResponseFormat.Type.TEXT) {
            throw PromptBuilder.invalid(what + " cannot be combined with response_format "
                    + req.getResponseFormat().getType());
        }
        if (req.getToolsCount() == 0) {
            throw PromptBuilder.invalid(what + " needs tools");
        }
        try {
            List<ToolCallGrammar.Tool> tools = new ArrayList<>();
            for (Tool t : req.getToolsList()) {
                if (choice.getMode() != ToolChoice.Mode.FUNCTION || t.getName().equals(choice.getFunctionName())) {
                    // As OpenAI: a tool without parameters takes an empty parameter list.
                    tools.add(new ToolCallGrammar.Tool(t.getName(), t.getParametersJsonSchema().isBlank()
                            ? "{\"type\": \"object\", \"properties\": {}, \"additionalProperties\": false}"
                            : t.getParametersJsonSchema()));
                }
            }
            if (tools.isEmpty()) {
                throw FieldViolation.invalid("tool_choice", what + ": no tool is named '" + choice.getFunctionName() + "'");
            }
            return ToolCallGrammar.of(tools, choice.getMode() == ToolChoice.Mode.REQUIRED && !choice.getSingleCall());
        } catch (IllegalArgumentException e) {
            throw PromptBuilder.invalid(what + ": " + e.getMessage());
        }
    }

    /** Whether the answer is masked to a grammar (JSON mode, a response schema, forced tool calls). */
    private static boolean constrained(GenerateRequest req) {
        ToolChoice.Mode choice = req.getToolChoice().getMode();
        return req.getResponseFormat().getType() != ResponseFormat.Type.TEXT
                || choice == ToolChoice.Mode.REQUIRED || choice == ToolChoice.Mode.FUNCTION;
    }

    /** Prompt ids and where the output starts relative to a think block. */
    private record Prompt(int[] ids, ReasoningMode reasoning) {}

    private Prompt prompt(GenerateRequest req) {
        if (req.getToolsCount() > 0 && req.getPromptCase() != GenerateRequest.PromptCase.CHAT) {
            throw PromptBuilder.invalid("tools are only allowed with a chat prompt");
        }
        if (req.getPromptCase() != GenerateRequest.PromptCase.CHAT && (req.getContinueFinalMessage()
                || req.hasAddGenerationPrompt())) {
            throw PromptBuilder.invalid((req.getContinueFinalMessage() ? "continue_final_message" : "add_generation_prompt")
                    + " is only for a chat prompt");
        }
        if (req.hasSuffix() && req.getPromptCase() != GenerateRequest.PromptCase.TEXT) {
            throw FieldViolation.invalid("suffix", "suffix (fill in the middle) is only for a text prompt");
        }
        if (req.hasSuffix() && req.hasTruncatePromptTokens()) { // cutting the prompt's start would cut the FIM frame
            throw FieldViolation.invalid("suffix", "suffix (fill in the middle) cannot be combined with "
                    + "truncate_prompt_tokens");
        }
        if (req.getContinueFinalMessage() && constrained(req)) {
            // The form would hold from the answer's start, which the continued message has already passed.
            throw FieldViolation.invalid("continue_final_message", "continue_final_message cannot be combined with "
                    + "a constrained answer (response_format or tool_choice required/function)");
        }
        if (!req.getChatTemplate().isEmpty() && !req.hasChat()) {
            throw FieldViolation.invalid("chat_template", "chat_template renders chat messages; this prompt is not a chat");
        }
        if (!req.getChatTemplateKwargs().isEmpty() && !req.hasChat()) {
            throw FieldViolation.invalid("chat_template_kwargs", "chat_template_kwargs are a chat template's; this prompt "
                    + "is not a chat");
        }
        Prompt p = switch (req.getPromptCase()) {
            case CHAT -> {
                List<Tool> tools = req.getToolChoice().getMode() == ToolChoice.Mode.NONE ? List.of() : req.getToolsList();
                // A constrained answer (JSON, forced calls) starts at once: no thinking unless asked for, or
                // unless the template opens the block itself.
                PromptBuilder.Thinking thinking = req.hasEnableThinking()
                        ? req.getEnableThinking() ? PromptBuilder.Thinking.AS_TEMPLATE : PromptBuilder.Thinking.SKIP
                        : constrained(req) ? PromptBuilder.Thinking.SKIP_UNLESS_OPENED : PromptBuilder.Thinking.AS_TEMPLATE;
                // Continuing a message, there is no generation prompt unless one is asked for (then refused).
                boolean generationPrompt = req.hasAddGenerationPrompt() ? req.getAddGenerationPrompt()
                        : !req.getContinueFinalMessage();
                String text = prompts.render(prompts.template(req.getChatTemplate()),
                        PromptBuilder.templateVariables(req.getChatTemplateKwargs()), req.getChat().getMessagesList(), tools,
                        generationPrompt, req.getContinueFinalMessage(), thinking);
                yield new Prompt(prompts.fitModel(prompts.encode(text, false, "chat"), "chat"), ReasoningMode.forPrompt(text));
            }
            case TEXT -> req.hasSuffix()
                    ? new Prompt(prompts.fitModel(prompts.fillInTheMiddle(req.getText(), req.getSuffix(),
                            req.getAddSpecialTokens()), "text"), ReasoningMode.DETECT)
                    : new Prompt(prompts.fitModel(prompts.encode(req.getText(), req.getAddSpecialTokens(), "text"),
                            "text"), ReasoningMode.forPrompt(req.getText()));
            case TOKEN_IDS -> {
                int[] ids = prompts.ids(req.getTokenIds().getIdsList(), "token_ids.ids");
                // As for text prompts: the mode the prompt's end implies (a few tokens hold any marker).
                int[] tail = java.util.Arrays.copyOfRange(ids, Math.max(0, ids.length - 8), ids.length);
                yield new Prompt(ids, ReasoningMode.forPrompt(model.tokenizer().decode(tail, false)));
            }
            case PROMPT_NOT_SET -> new Prompt(new int[0], ReasoningMode.DETECT);
        };
        if (req.hasTruncatePromptTokens()) {
            p = new Prompt(truncated(p.ids(), req.getTruncatePromptTokens()), p.reasoning());
        }
        prompts.checkLength(p.ids(), 1);
        return p;
    }

    /**
     * vLLM's truncate_prompt_tokens: the prompt's last {@code keep} tokens (left truncation; -1: as many
     * as the context holds). Where the output starts relative to a thinking block is the whole prompt's,
     * as its end is kept.
     */
    private int[] truncated(int[] ids, int keep) {
        if (keep < 1 && keep != -1) {
            throw FieldViolation.invalid("truncate_prompt_tokens", "truncate_prompt_tokens must be >= 1 or -1 (the "
                    + "context's length), got " + keep);
        }
        int most = keep == -1 ? model.maxContext() : keep;
        if (most > model.maxContext()) {
            throw FieldViolation.invalid("truncate_prompt_tokens", "truncate_prompt_tokens " + keep + " is more than "
                    + "the context holds (" + model.maxContext() + ")");
        }
        return ids.length <= most ? ids : java.util.Arrays.copyOfRange(ids, ids.length - most, ids.length);
    }

    /** A max_tokens past the end of the context is refused, as vLLM and OpenAI refuse it, not cut short. */
    private void requireContextHolds(int promptTokens, int maxTokens) {
        if ((long) promptTokens + maxTokens > model.maxContext()) {
            throw FieldViolation.invalid("sampling.max_tokens", maxTokens + " with a prompt of " + promptTokens
                    + " tokens reaches " + ((long) promptTokens + maxTokens) + " positions, but the context holds "
                    + model.maxContext() + ": ask for at most " + Math.max(0, model.maxContext() - promptTokens) + " tokens");
        }
    }

    /**
     * With attention workers: a request that no worker's announced KV budget could hold even alone is
     * INVALID_ARGUMENT, as one beyond the coordinator's own budget is (it would otherwise run until its
     * worker refuses it, preempting others on the way).
     */
    private void requireAWorkerHolds(int promptTokens, long maxTokens) {
        if (model.attention() == null) {
            return;
        }
        long largest = model.attention().largestSequencePositions(kvBytesPerPosition);
        if (promptTokens + 1L > largest) {
            throw new KvBudgetException(true, "the prompt of " + promptTokens + " tokens needs more KV cache than any "
                    + "attention worker's budget holds (" + largest + " positions: their --kv-cache-mb); send a "
                    + "shorter prompt");
        }
        if (promptTokens + maxTokens > largest) {
            throw new KvBudgetException(false, "prompt + max tokens reach " + (promptTokens + maxTokens) + " positions, more "
                    + "than any attention worker's KV cache budget holds (" + largest + " positions: their "
                    + "--kv-cache-mb); ask for fewer tokens");
        }
    }

    /**
     * max_tokens when a request leaves it out: the rest of the context (vLLM's default), where the
     * context is also bounded by the longest sequence the KV cache budget holds (the coordinator's, or
     * with attention workers the smallest they announce).
     */
    private int defaultMaxTokens(int promptTokens) {
        long longest = Math.min(model.maxContext(), scheduler.maxSequencePositions());
        if (model.attention() != null) {
            longest = Math.min(longest, model.attention().maxSequencePositions(kvBytesPerPosition));
        }
        return (int) Math.max(1, longest - promptTokens);
    }

    /**
     * Proto sampling fields over the server defaults, validated by the sampling package
     * ({@link dev.epic.text.sampling.InvalidSamplingException} names the field), before a prompt is
     * known. Public so that a client (epic generate) can refuse bad values before it loads a model.
     */
    public static SamplingParams sampling(dev.epic.proto.SamplingParams p) {
        return sampling(p, Integer.MAX_VALUE);
    }

    /** @param defaultMaxTokens max_tokens when the request has none */
    static SamplingParams sampling(dev.epic.proto.SamplingParams p, int defaultMaxTokens) {
        SamplingParams.Builder b = SamplingParams.builder().maxTokens(defaultMaxTokens);
        if (p.hasTemperature()) {
            b.temperature(p.getTemperature());
        }
        if (p.hasTopP()) {
            b.topP(p.getTopP());
        }
        if (p.hasTopK()) {
            b.topK(p.getTopK());
        }
        if (p.hasMinP()) {
            b.minP(p.getMinP());
        }
        if (p.hasSeed()) {
            b.seed(p.getSeed());
        }
        b.presencePenalty(p.getPresencePenalty());
        b.frequencyPenalty(p.getFrequencyPenalty());
        if (p.hasRepetitionPenalty()) {
            b.repetitionPenalty(p.getRepetitionPenalty());
        }
        if (p.hasLogprobs()) {
            b.logprobs(uint32("logprobs", p.getLogprobs()));
        }
        b.minTokens(uint32("min_tokens", p.getMinTokens()));
        b.includeStopStrInOutput(p.getIncludeStopStrInOutput());
        if (p.hasSkipSpecialTokens()) {
            b.skipSpecialTokens(p.getSkipSpecialTokens());
        }
        if (p.hasPromptLogprobs()) {
            b.promptLogprobs(uint32("prompt_logprobs", p.getPromptLogprobs()));
        }
        if (p.hasMaxTokens()) {
            b.maxTokens(uint32("max_tokens", p.getMaxTokens()));
        }
        b.stop(p.getStopList());
        Set<Integer> stopIds = new HashSet<>();
        for (int id : p.getStopTokenIdsList()) {
            stopIds.add(uint32("stop_token_ids", id));
        }
        b.stopTokenIds(stopIds);
        java.util.Map<Integer, Float> bias = new java.util.HashMap<>();
        p.getLogitBiasMap().forEach((id, v) -> bias.put(uint32("logit_bias", id), v));
        b.logitBias(bias);
        Set<Integer> allowed = new HashSet<>();
        for (int id : p.getAllowedTokenIdsList()) {
            allowed.add(uint32("allowed_token_ids", id));
        }
        b.allowedTokenIds(allowed);
        b.ignoreEos(p.getIgnoreEos());
        try {
            return b.build();
        } catch (InvalidSamplingException e) {
            throw FieldViolation.invalid("sampling." + e.field(), e.reason());
        }
    }

    /**
     * A uint32 sampling field as a Java int: values past Integer.MAX_VALUE (negative here) are refused
     * with the value the client sent, not a clamped or wrapped one.
     */
    private static int uint32(String field, int raw) {
        if (raw < 0) {
            throw FieldViolation.invalid("sampling." + field, Integer.toUnsignedString(raw) + " is too large (at most "
                    + Integer.MAX_VALUE + ")");
        }
        return raw;
    }

    private void requireWorkers() {
        String missing = experts.missingExperts();
        if (!missing.isEmpty()) {
            throw Status.UNAVAILABLE.withDescription("no live expert worker for experts " + missing
                    + " of " + model.name() + "; retry when workers hosting them have joined").asRuntimeException();
        }
        if (model.attention() != null && !model.attention().hasLiveWorker()) {
            throw Status.UNAVAILABLE.withDescription("no live attention worker for " + model.name()
                    + "; retry when one has joined").asRuntimeException();
        }
    }

    /** Streams one sample's deltas to its gRPC call; runs on the engine thread. */
    private final class StreamSink implements GenerationTask.Sink {
        private final Call call;
        private final int index;
        private final long arrivalNanos;
        private long firstTokenNanos = -1;
        private int reasoningTokens;
        private int cachedPromptTokens;
        private boolean sentCalls; // a well-formed tool call went out
        /** With prompt logprobs: gathered until the first message, which sends them and the prompt ids; else null. */
        private List<Logprobs> promptLogprobs;

        private final int[] promptIds;
        /** Usage on every message (the counts so far), not only the last. */
        private final boolean continuousUsage;

        StreamSink(Call call, int index, long arrivalNanos, int[] promptIds, boolean promptLogprobs,
                boolean continuousUsage) {
            this.continuousUsage = continuousUsage;
            this.call = call;
            this.index = index;
            this.arrivalNanos = arrivalNanos;
            this.promptIds = promptIds;
            this.promptLogprobs = promptLogprobs ? new ArrayList<>() : null;
        }

        @Override
        public void promptCached(int tokens) {
            cachedPromptTokens = tokens;
        }

        @Override
        public void promptLogprobs(List<Logprobs> logprobs) {
            promptLogprobs.addAll(logprobs);
        }

        @Override
        public void delta(Delta d) {
            if (!d.reasoning().isEmpty()) {
                reasoningTokens = d.usage().completionTokens();
            }
            if (firstTokenNanos < 0 && d.tokenIds().length > 0) {
                firstTokenNanos = System.nanoTime() - arrivalNanos;
                metrics.firstToken(firstTokenNanos);
            }
            if (d.finished()) {
                metrics.finished(System.nanoTime() - arrivalNanos, firstTokenNanos, d.usage().promptTokens(),
                        d.usage().completionTokens(), d.finishReason().name().toLowerCase(java.util.Locale.ROOT));
            }
            if (call.call.isCancelled()) {
                return;
            }
            GenerateResponse.Builder r = GenerateResponse.newBuilder().setRequestId(call.id).setIndex(index)
                    .setText(d.content()).setReasoningText(d.reasoning());
            for (int t : d.tokenIds()) {
                r.addTokenIds(t);
            }
            for (Logprobs l : d.logprobs()) {
                r.addLogprobs(proto(l));
            }
            if (promptLogprobs != null) {
                promptLogprobs.forEach(l -> r.addPromptLogprobs(proto(l)));
                for (int id : promptIds) {
                    r.addPromptTokenIds(id);
                }
                promptLogprobs = null;
            }
            sentCalls |= addToolCalls(r, d.toolCalls(), call.id);
            if (d.finished()) {
                r.setFinishReason(finishReason(d.finishReason(), sentCalls));
            }
            if (d.finished() || continuousUsage) {
                r.setUsage(Usage.newBuilder().setPromptTokens(d.usage().promptTokens())
                        .setCompletionTokens(d.usage().completionTokens()).setReasoningTokens(reasoningTokens)
                        .setCachedPromptTokens(cachedPromptTokens));
            }
            call.send(r.build(), d.finished());
        }

        @Override
        public void cancelled(Delta last) {
            if (call.call.isCancelled() || call.closed) {
                log.debug("{}: sample {} cancelled", call.id, index);
                metrics.cancelled();
                return;
            }
            delta(last); // server shutdown: tell the client how it ended
        }

        @Override
        public void failed(Throwable error) {
            log.warn("{}: failed: {}", call.id, error.toString());
            metrics.failed(toStatus(error).getStatus().getCode().name());
            call.fail(toStatus(error));
        }
    }

    private TokenLogprob proto(Logprobs l) {
        TokenLogprob.Builder tl = TokenLogprob.newBuilder().setTokenId(l.token()).setLogprob(l.logprob())
                .setRank(l.rank()).setToken(tokenBytes(l.token()));
        for (int i = 0; i < l.topTokens().length; i++) {
            tl.addTop(TopLogprob.newBuilder().setTokenId(l.topTokens()[i]).setLogprob(l.topLogprobs()[i])
                    .setToken(tokenBytes(l.topTokens()[i])));
        }
        return tl.build();
    }

    /** Empty for an id past the tokenizer's vocabulary (lm_head padding rows have no text). */
    private ByteString tokenBytes(int id) {
        return id < model.tokenizer().size() ? ByteString.copyFrom(model.tokenizer().tokenBytes(id)) : ByteString.EMPTY;
    }

    /**
     * Adds the well-formed calls (a name, arguments a JSON object) and returns whether there were any.
     * Clients parse the arguments (json.loads, the SDKs' strict tools), so a call cut by max_tokens or
     * written wrong would break them: it is logged and left out, as vLLM reports no call when its
     * extraction fails.
     */
    static boolean addToolCalls(GenerateResponse.Builder r, List<dev.epic.text.output.ToolCall> calls, String requestId) {
        boolean added = false;
        for (dev.epic.text.output.ToolCall c : calls) {
            if (!c.ok()) {
                log.info("{}: tool call {} not returned ({}): {}", requestId, c.index(), c.status(), c.error());
                continue;
            }
            r.addToolCalls(ToolCall.newBuilder().setId(c.id()).setName(c.name()).setArguments(c.arguments()));
            added = true;
        }
        return added;
    }

    /** "tool_calls" only when a call went out: a malformed one alone ends as a plain stop. */
    static FinishReason finishReason(dev.epic.text.generate.FinishReason r, boolean sentCalls) {
        return r == dev.epic.text.generate.FinishReason.TOOL_CALLS && !sentCalls ? FinishReason.STOP : finishReason(r);
    }

    static FinishReason finishReason(dev.epic.text.generate.FinishReason r) {
        return switch (r) {
            case STOP, EOS -> FinishReason.STOP;
            case LENGTH -> FinishReason.LENGTH;
            case TOOL_CALLS -> FinishReason.TOOL_CALLS;
            case CANCELLED -> FinishReason.CANCELLED;
        };
    }

    static StatusRuntimeException toStatus(Throwable error) {
        if (error instanceof StatusRuntimeException s) {
            return s;
        }
        if (error instanceof CompletionException && error.getCause() != null) {
            return toStatus(error.getCause());
        }
        if (error instanceof CancellationException) {
            return Status.CANCELLED.withDescription(error.getMessage()).asRuntimeException();
        }
        if (error instanceof dev.epic.text.constrain.GrammarCursor.TooAmbiguous) { // found mid-answer, the request's fault
            return FieldViolation.invalid("response_format", "grammar (guided_grammar): " + error.getMessage());
        }
        if (error instanceof OutOfMemoryError) { // the sequence's own failure; the others go on
            return Status.RESOURCE_EXHAUSTED.withDescription("the coordinator ran out of memory for this request ("
                    + error.getMessage() + "); other requests go on").asRuntimeException();
        }
        Status s = Status.fromThrowable(error);
        if (s.getCode() == Status.Code.UNKNOWN) {
            s = Status.INTERNAL.withDescription(error.toString()).withCause(error);
        }
        return s.asRuntimeException();
    }

    @Override
    public void tokenize(TokenizeRequest req, StreamObserver<TokenizeResponse> out) {
        try {
            TokenizeResponse.Builder r = TokenizeResponse.newBuilder();
            int[] ids = switch (req.getInputCase()) {
                case TEXT -> {
                    if (req.getToolsCount() > 0 || !req.getChatTemplate().isEmpty() || !req.getChatTemplateKwargs().isEmpty()) {
                        throw PromptBuilder.invalid("tools, chat_template and chat_template_kwargs are only allowed with a "
                                + "chat prompt"); // as Generate: a chat's only
                    }
                    yield prompts.encode(req.getText(), req.getAddSpecialTokens(), "text");
                }
                case CHAT -> {
                    String text = prompts.render(prompts.template(req.getChatTemplate()),
                            PromptBuilder.templateVariables(req.getChatTemplateKwargs()), req.getChat().getMessagesList(),
                            req.getToolsList(),
                            req.getAddGenerationPrompt(), req.getContinueFinalMessage(),
                            req.hasEnableThinking() && !req.getEnableThinking()
                                    ? PromptBuilder.Thinking.SKIP : PromptBuilder.Thinking.AS_TEMPLATE);
                    r.setText(text);
                    yield prompts.encode(text, false, "chat");
                }
                case INPUT_NOT_SET -> throw PromptBuilder.invalid("input is empty: give text or chat messages");
            };
            for (int id : ids) {
                r.addTokenIds(id).addTokenStrings(model.tokenizer().tokenString(id));
            }
            out.onNext(r.build());
            out.onCompleted();
        } catch (StatusRuntimeException e) {
            out.onError(e);
        }
    }

    @Override
    public void detokenize(DetokenizeRequest req, StreamObserver<DetokenizeResponse> out) {
        int vocabulary = model.tokenizer().size();
        int[] ids = new int[req.getTokenIdsCount()];
        DetokenizeResponse.Builder r = DetokenizeResponse.newBuilder();
        for (int i = 0; i < ids.length; i++) {
            ids[i] = req.getTokenIds(i);
            if (ids[i] < 0 || ids[i] >= vocabulary) {
                out.onError(FieldViolation.invalid("token_ids", "token_ids[" + i + "] = "
                        + Integer.toUnsignedString(ids[i]) + " is outside the tokenizer's vocabulary [0, " + vocabulary + ")"));
                return;
            }
            r.addTokens(tokenBytes(ids[i]));
        }
        out.onNext(r.setText(model.tokenizer().decode(ids, req.getSkipSpecialTokens())).build());
        out.onCompleted();
    }

    @Override
    public void logits(LogitsRequest req, StreamObserver<LogitsResponse> out) {
        ServerCallStreamObserver<LogitsResponse> call = (ServerCallStreamObserver<LogitsResponse>) out;
        LogitsTask task;
        try {
            int steps = req.getSteps();
            if (steps < 0 || steps > model.maxContext()) {
                throw FieldViolation.invalid("steps", Integer.toUnsignedString(steps) + " exceeds the context of "
                        + model.maxContext() + " positions");
            }
            // Every step's logits are held until the answer goes out, and copied into it.
            long bytesPerStep = (long) model.config().vocabSize() * Float.BYTES;
            if ((steps + 1L) * bytesPerStep > LOGITS_BYTES) {
                throw FieldViolation.invalid("steps", "the answer would hold " + (steps + 1L) * bytesPerStep / (1 << 20)
                        + " MiB of logits (" + (steps + 1L) + " x " + model.config().vocabSize() + " floats), more than this "
                        + "coordinator keeps for one request (" + LOGITS_BYTES / (1 << 20) + " MiB): at most "
                        + (LOGITS_BYTES / bytesPerStep - 1) + " steps; got " + steps);
            }
            int[] ids = prompts.checkLength(prompts.ids(req.getPromptTokenIdsList(), "prompt_token_ids"), steps);
            requireAWorkerHolds(ids.length, steps);
            requireWorkers();
            task = new LogitsTask(ids, steps);
            call.setOnCancelHandler(() -> {
                task.cancel();
                scheduler.wake();
            });
            scheduler.submit(task);
        } catch (StatusRuntimeException e) {
            out.onError(e);
            return;
        } catch (QueueFullException e) {
            out.onError(Status.RESOURCE_EXHAUSTED.withDescription(e.getMessage()).asRuntimeException());
            return;
        } catch (KvBudgetException e) { // a Logits request's max tokens are its steps
            out.onError(FieldViolation.invalid(e.field().equals("prompt") ? "prompt_token_ids" : "steps", e.getMessage()));
            return;
        }
        task.result().whenComplete((result, error) -> {
            if (call.isCancelled()) {
                return;
            }
            if (error != null) {
                out.onError(toStatus(error));
                return;
            }
            LogitsResponse.Builder r = LogitsResponse.newBuilder().setVocabSize(model.config().vocabSize());
            for (int k = 0; k < result.logits().size(); k++) {
                float[] l = result.logits().get(k);
                ByteBuffer buf = ByteBuffer.allocate(l.length * Float.BYTES).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(l);
                r.addSteps(StepLogits.newBuilder().setLogits(ByteString.copyFrom(buf.array())).setArgmax(result.argmax()[k]));
            }
            out.onNext(r.build());
            out.onCompleted();
        });
    }

    @Override
    public void modelInfo(ModelInfoRequest req, StreamObserver<ModelInfoResponse> out) {
        var c = model.config();
        ModelInfoResponse.Builder r = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName(model.fingerprint().name())
                        .setSha256(model.fingerprint().sha256()))
                .setModelType(modelType)
                .setVocabSize(c.vocabSize())
                .setHiddenSize(c.hiddenSize())
                .setNumLayers(c.numHiddenLayers())
                .setNumRoutedExperts(c.nRoutedExperts() == null ? 0 : c.nRoutedExperts())
                .setExpertsPerToken(c.nRoutedExperts() == null ? 0 : c.numExpertsPerTok())
                .setMaxContext(model.maxContext())
                .setSystemFingerprint(model.systemFingerprint())
                .addAllExpertWorkers(experts.workers())
                .addAllDownExpertWorkers(experts.downWorkers())
                .addAllRefusedWorkers(experts.refusedWorkers())
                .setWeightBytesPerToken(model.weightBytesPerToken())
                .setTokenizerVocabSize(model.tokenizer().size());
        if (model.attention() != null) {
            r.addAllAttentionWorkers(model.attention().workers());
            r.addAllRefusedWorkers(model.attention().refusedWorkers());
        }
        out.onNext(r.build());
        out.onCompleted();
    }

    @Override
    public void stats(StatsRequest req, StreamObserver<StatsResponse> out) {
        out.onNext(stats.build());
        out.onCompleted();
    }
}
