package dev.epic.text.generate;

import dev.epic.text.Vocabulary;
import dev.epic.text.constrain.AnswerConstraint;
import dev.epic.text.constrain.ThinkingFirst;
import dev.epic.text.constrain.TokenConstraint;
import dev.epic.text.constrain.ToolCallConstraint;
import dev.epic.text.output.DeepSeekMarkers;
import dev.epic.text.output.ReasoningMode;
import dev.epic.text.output.ReasoningParser;
import dev.epic.text.output.StopMatcher;
import dev.epic.text.output.StreamingDecoder;
import dev.epic.text.output.ToolCall;
import dev.epic.text.output.ToolCallParser;
import dev.epic.text.sampling.InvalidSamplingException;
import dev.epic.text.sampling.Logprobs;
import dev.epic.text.sampling.Sampler;
import dev.epic.text.sampling.SamplingParams;
import dev.epic.text.sampling.TokenHistory;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.random.RandomGenerator;

/**
 * The per-sequence state of one completion, independent of how logits are computed. A driver calls
 * {@link #sample(float[])} with the logits for the next position, then {@link #accept(int)} with the chosen
 * token (or a token chosen elsewhere), until {@link #finished()}. Text flows
 * decoder -> stop strings -> reasoning split -> tool-call parser; each accept returns the new output.
 * Not thread-safe: one sequence, one thread at a time.
 */
public final class Generation {
    private final Vocabulary vocab;
    private final SamplingParams params;
    private final int promptTokens;
    private final int maxContext;
    private final Set<Integer> eos;
    private final TokenHistory history;
    private final RandomGenerator rng;
    private final StreamingDecoder decoder;
    private final StopMatcher stops;
    private final ReasoningParser reasoning;
    private final ToolCallParser tools;
    /** JSON mode, a response schema or forced tool calls; null when the output is free. */
    private final TokenConstraint constraint;
    /** What may end a constrained answer once it is whole: end of sequence and the stop tokens. */
    private final Set<Integer> constraintEnds;
    /** allowed_token_ids as a mask; null: any token. */
    private final java.util.BitSet allowed;
    private Sampler sampler;
    private Logprobs sampled; // of the token sample() chose last, when the request asks for logprobs
    private int completionTokens;
    private boolean sawCalls;
    private FinishReason finishReason;

    public Generation(Vocabulary vocab, int[] promptIds, SamplingParams params) {
        this(vocab, promptIds, params, GenerationOptions.defaults());
    }

    /**
     * @throws IllegalArgumentException if the prompt is empty, has ids outside the vocabulary, or leaves no room
     *                                  in the context for a single token
     */
    public Generation(Vocabulary vocab, int[] promptIds, SamplingParams params, GenerationOptions options) {
        if (promptIds.length == 0) {
            throw new IllegalArgumentException("prompt must have at least one token");
        }
        for (int id : promptIds) {
            if (id < 0 || id >= vocab.size()) {
                throw new IllegalArgumentException("prompt token id " + id + " outside the vocabulary [0, " + vocab.size() + ")");
            }
        }
        if (options.maxContextLength() > 0 && promptIds.length >= options.maxContextLength()) {
            throw new IllegalArgumentException("prompt has " + promptIds.length + " tokens; the context length "
                    + options.maxContextLength() + " leaves no room to generate");
        }
        // Ids no logit exists for could never take effect: a mistake the caller should hear of.
        int reach = options.logitsSize() > 0 ? Math.min(vocab.size(), options.logitsSize()) : vocab.size();
        for (int id : params.logitBias().keySet()) {
            if (id >= reach) {
                throw new InvalidSamplingException("logit_bias", "token id " + id + " is outside the vocabulary [0, "
                        + reach + ")");
            }
        }
        for (int id : params.stopTokenIds()) {
            if (id >= reach) {
                throw new InvalidSamplingException("stop_token_ids", "token id " + id + " is outside the vocabulary [0, "
                        + reach + ")");
            }
        }
        for (int id : params.allowedTokenIds()) {
            if (id >= reach) {
                throw new InvalidSamplingException("allowed_token_ids", "token id " + id + " is outside the vocabulary [0, "
                        + reach + ")");
            }
        }
        if (!params.allowedTokenIds().isEmpty() && options.constrained()) {
            // The form's mask and the allowed set could leave no token at all.
            throw new InvalidSamplingException("allowed_token_ids", "allowed_token_ids cannot be combined with a "
                    + "constrained answer (response_format or a forced tool call)");
        }
        this.vocab = vocab;
        this.params = params;
        this.promptTokens = promptIds.length;
        this.maxContext = options.maxContextLength();
        this.eos = options.eosTokenIds() != null ? options.eosTokenIds() : DeepSeekMarkers.ids(vocab, List.of(DeepSeekMarkers.EOS));
        this.history = params.hasPenalties() ? TokenHistory.ofPrompt(promptIds) : null;
        this.rng = params.newRandom();
        Set<Integer> markers = DeepSeekMarkers.ids(vocab, DeepSeekMarkers.PARSED);
        this.decoder = new StreamingDecoder(vocab, params.skipSpecialTokens(), markers::contains);
        this.stops = new StopMatcher(params.stop());
        this.reasoning = new ReasoningParser(options.reasoning());
        this.tools = options.parseToolCalls() ? new ToolCallParser(options.toolCallIds()) : null;
        if (options.constrained() && (params.ignoreEos() || params.minTokens() > 0 || eos.isEmpty())) {
            // Once the answer is complete only end of sequence may follow: it must be there and allowed to end it.
            String what = options.toolCalls() != null ? "tool_choice" : "response_format";
            throw new InvalidSamplingException(what, "a " + (options.toolCalls() != null ? "forced tool call" : "constrained answer")
                    + " cannot be combined with ignore_eos or min_tokens, and needs an end-of-sequence token");
        }
        TokenConstraint answer = options.jsonSchema() != null ? AnswerConstraint.json(vocab, options.jsonSchema())
                : options.textLanguage() != null ? options.textLanguage().constrain(vocab)
                : options.toolCalls() != null ? new ToolCallConstraint(vocab, options.toolCalls()) : null;
        this.constraint = answer != null && options.thinkFirst() != ReasoningMode.NONE
                ? new ThinkingFirst(vocab, answer, options.thinkFirst() == ReasoningMode.OPEN) : answer;
        if (params.allowedTokenIds().isEmpty()) {
            this.allowed = null;
        } else {
            this.allowed = new java.util.BitSet();
            params.allowedTokenIds().forEach(allowed::set);
        }
        this.constraintEnds = new HashSet<>(eos);
        constraintEnds.addAll(params.stopTokenIds());
    }

    /**
     * Chooses the next token from {@code logits} (used as scratch). Tokens past the vocabulary are never
     * chosen. Speculative decoding checks a drafted token against this choice, kept where they are
     * equal: the draft is kept with its probability and each token takes one random draw, as without
     * drafts, so a seeded request gives the same tokens with speculation on or off.
     */
    public int sample(float[] logits) {
        if (sampler == null) {
            sampler = new Sampler();
        }
        return sample(logits, sampler);
    }

    /** As {@link #sample(float[])} with a caller-owned scratch Sampler (share one per thread across sequences). */
    public int sample(float[] logits, Sampler workspace) {
        ensureRunning();
        int n = Math.min(logits.length, vocab.size());
        float[] raw = params.wantsLogprobs() ? logits.clone() : null; // the sampler uses logits as scratch
        params.logitBias().forEach((id, bias) -> {
            if (id < n) {
                logits[id] += bias;
            }
        });
        if (completionTokens < params.minTokens()) { // vLLM's min_tokens: nothing may end it yet
            if (!params.ignoreEos()) {
                eos.forEach(id -> ban(logits, n, id));
            }
            params.stopTokenIds().forEach(id -> ban(logits, n, id));
        }
        if (constraint != null) {
            constraint.restrict(logits, n, constraintEnds);
        }
        if (allowed != null) { // vLLM's allowed_token_ids: every other logit is masked, end of sequence included
            for (int i = 0; i < n; i++) {
                if (!allowed.get(i)) {
                    logits[i] = Float.NEGATIVE_INFINITY;
                }
            }
        }
        int token = workspace.sample(logits, n, params, history, rng);
        sampled = raw != null ? Logprobs.of(raw, n, token, params.logprobs()) : null;
        return token;
    }

    private static void ban(float[] logits, int n, int id) {
        if (id >= 0 && id < n) {
            logits[id] = Float.NEGATIVE_INFINITY;
        }
    }

    /**
     * The log-probability of {@code token} under one row of logits ({@code width} values from
     * {@code offset}), with the prompt_logprobs alternatives asked for. For prompt tokens.
     */
    public Logprobs promptLogprobs(float[] logits, int offset, int width, int token) {
        // Over the whole row: a prompt may hold any id the model has, padding rows included.
        return Logprobs.of(logits, offset, width, token, Math.max(0, params.promptLogprobs()));
    }

    /** Appends the chosen token and returns what it adds; the delta carries the finish reason when it ends. */
    public Delta accept(int token) {
        ensureRunning();
        if (token < 0 || token >= vocab.size()) {
            throw new IllegalArgumentException("token id " + token + " outside the vocabulary [0, " + vocab.size() + ")");
        }
        completionTokens++;
        List<Logprobs> logprobs = sampled != null && sampled.token() == token ? List.of(sampled) : List.of();
        sampled = null;
        if (history != null) {
            history.addGenerated(token);
        }
        if (constraint != null && !constraintEnds.contains(token)) {
            constraint.accept(token);
        }
        FinishReason reason = null;
        String text = "";
        if (eos.contains(token) && !params.ignoreEos()) {
            reason = FinishReason.EOS;
        } else if (params.stopTokenIds().contains(token)) {
            reason = FinishReason.STOP;
        } else {
            text = decoder.push(token);
        }
        if (reason == null && (completionTokens >= params.maxTokens()
                || maxContext > 0 && promptTokens + completionTokens >= maxContext)) {
            reason = FinishReason.LENGTH;
        }
        return emit(new int[] {token}, logprobs, text, reason);
    }

    /** The most tokens the sequence can reach, prompt included: prompt + max_tokens, within the context. */
    public long maxTotalTokens() {
        long most = (long) promptTokens + params.maxTokens();
        return maxContext > 0 ? Math.min(most, maxContext) : most;
    }

    /** Ends the generation now (client gone, server shutdown); returns the flushed remainder. */
    public Delta cancel() {
        ensureRunning();
        return emit(new int[0], List.of(), "", FinishReason.CANCELLED);
    }

    public boolean finished() {
        return finishReason != null;
    }

    /** Whether {@code token} ends the answer as end of sequence (ignore_eos aside). */
    public boolean isEos(int token) {
        return eos.contains(token);
    }

    /** Null while running. */
    public FinishReason finishReason() {
        return finishReason;
    }

    public Usage usage() {
        return new Usage(promptTokens, completionTokens);
    }

    public SamplingParams params() {
        return params;
    }

    private Delta emit(int[] tokens, List<Logprobs> logprobs, String text, FinishReason reason) {
        boolean last = reason != null;
        if (last) {
            text += decoder.finish();
        }
        // Before min_tokens no stop string counts (as in vLLM): the text passes unmatched.
        String visible = completionTokens < params.minTokens() ? text : stops.push(text);
        if (stops.stopped()) {
            if (reason == null || reason == FinishReason.LENGTH) {
                reason = FinishReason.STOP; // the stop string came first
            }
            if (params.includeStopStrInOutput()) {
                visible += stops.matched();
            }
            last = true;
        } else if (last) {
            visible += stops.flush();
        }
        ReasoningParser.Split split = reasoning.push(visible);
        if (last) {
            ReasoningParser.Split end = reasoning.finish();
            split = new ReasoningParser.Split(split.reasoning() + end.reasoning(), split.content() + end.content());
        }
        String content = split.content();
        List<ToolCall> calls = List.of();
        if (tools != null) {
            ToolCallParser.Result r = tools.push(content);
            if (last) {
                ToolCallParser.Result end = tools.finish();
                List<ToolCall> all = new ArrayList<>(r.calls());
                all.addAll(end.calls());
                r = new ToolCallParser.Result(r.content() + end.content(), List.copyOf(all));
            }
            content = r.content();
            calls = r.calls();
            for (ToolCall c : calls) {
                sawCalls |= c.status() != ToolCall.Status.INCOMPLETE; // a closed call, valid or not
            }
        }
        if (last) {
            if (sawCalls && (reason == FinishReason.EOS || reason == FinishReason.STOP)) {
                reason = FinishReason.TOOL_CALLS;
            }
            finishReason = reason;
        }
        return new Delta(tokens, logprobs, content, split.reasoning(), calls, finishReason, usage());
    }

    private void ensureRunning() {
        if (finishReason != null) {
            throw new IllegalStateException("generation already finished (" + finishReason + ")");
        }
    }

}
