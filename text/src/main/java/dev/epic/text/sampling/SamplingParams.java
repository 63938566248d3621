package dev.epic.text.sampling;

import java.util.List;
import java.util.Map;
import java.util.OptionalLong;
import java.util.Set;
import java.util.random.RandomGenerator;
import java.util.random.RandomGeneratorFactory;

/**
 * Per-request decoding settings, validated on construction (vLLM / OpenAI semantics).
 *
 * @param temperature       0 = greedy argmax; otherwise logits are divided by it
 * @param topP              nucleus mass in (0, 1]; 1 = off
 * @param topK              keep the k most likely tokens; 0 or -1 = off
 * @param minP              drop tokens with p < min_p * p_max; 0 = off
 * @param seed              RNG seed; empty = nondeterministic
 * @param presencePenalty   OpenAI: subtract once from every token already generated, in [-2, 2]
 * @param frequencyPenalty  OpenAI: subtract count times for every generated occurrence, in [-2, 2]
 * @param repetitionPenalty HF/CTRL over prompt + generated: positive logits divided, negative multiplied; 1 = off
 * @param maxTokens         completion token budget, >= 1
 * @param stop              stop strings (not included in the output)
 * @param stopTokenIds      token ids that end generation (not decoded into the output)
 * @param ignoreEos         keep generating past EOS
 * @param skipSpecialTokens leave special tokens out of the decoded text
 * @param logprobs          -1 = none; otherwise report each generated token's {@link Logprobs} with this many
 *                          top alternatives (0 to {@link Logprobs#MAX_TOP})
 * @param promptLogprobs    -1 = none; otherwise also each prompt token's (after the first), given the tokens
 *                          before it, with this many alternatives
 * @param minTokens         no EOS, stop token or stop string ends the generation before this many tokens
 * @param includeStopStrInOutput the stop string that ended the generation is part of its text
 * @param logitBias         added to the logits of these token ids before sampling (OpenAI's logit_bias:
 *                          -100 bans a token, 100 all but forces it); logprobs stay the model's own
 * @param allowedTokenIds   when not empty, the only tokens that may be chosen (vLLM's allowed_token_ids);
 *                          logprobs stay the model's own
 */
public record SamplingParams(
        double temperature,
        double topP,
        int topK,
        double minP,
        OptionalLong seed,
        double presencePenalty,
        double frequencyPenalty,
        double repetitionPenalty,
        int maxTokens,
        List<String> stop,
        Set<Integer> stopTokenIds,
        boolean ignoreEos,
        boolean skipSpecialTokens,
        int logprobs,
        int promptLogprobs,
        int minTokens,
        boolean includeStopStrInOutput,
        Map<Integer, Float> logitBias,
        Set<Integer> allowedTokenIds) {

    public static final double DEFAULT_TEMPERATURE = 0.6;
    public static final double DEFAULT_TOP_P = 0.95;
    /** The builder's max_tokens; the server's default for requests without one is the rest of the context. */
    public static final int DEFAULT_MAX_TOKENS = 4096;

    /**
     * A value as the client wrote it: the gRPC API's floats arrive widened to double, where 1.1f would
     * print as 1.100000023841858, so a value that is a float prints as that float.
     */
    static String shown(double v) {
        return (double) (float) v == v ? Float.toString((float) v) : Double.toString(v);
    }

    public SamplingParams {
        if (Double.isNaN(temperature) || temperature < 0 || Double.isInfinite(temperature)) {
            throw new InvalidSamplingException("temperature", "must be a finite number >= 0, got " + shown(temperature));
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new InvalidSamplingException("top_p", "must be in (0, 1], got " + shown(topP));
        }
        if (topK < -1) {
            throw new InvalidSamplingException("top_k", "must be -1 or 0 (off) or a positive count, got " + topK);
        }
        if (!(minP >= 0 && minP <= 1)) {
            throw new InvalidSamplingException("min_p", "must be in [0, 1], got " + shown(minP));
        }
        if (!(presencePenalty >= -2 && presencePenalty <= 2)) {
            throw new InvalidSamplingException("presence_penalty", "must be in [-2, 2], got " + shown(presencePenalty));
        }
        if (!(frequencyPenalty >= -2 && frequencyPenalty <= 2)) {
            throw new InvalidSamplingException("frequency_penalty", "must be in [-2, 2], got " + shown(frequencyPenalty));
        }
        if (!(repetitionPenalty > 0) || Double.isInfinite(repetitionPenalty)) {
            throw new InvalidSamplingException("repetition_penalty", "must be a finite number > 0, got " + shown(repetitionPenalty));
        }
        if (maxTokens <= 0) {
            throw new InvalidSamplingException("max_tokens", "must be >= 1, got " + maxTokens);
        }
        if (minTokens < 0 || minTokens > maxTokens) {
            throw new InvalidSamplingException("min_tokens", "must be in [0, max_tokens = " + maxTokens + "], got "
                    + minTokens);
        }
        if (logprobs < -1 || logprobs > Logprobs.MAX_TOP) {
            throw new InvalidSamplingException("logprobs", "must be in [0, " + Logprobs.MAX_TOP + "], got " + logprobs);
        }
        if (promptLogprobs < -1 || promptLogprobs > Logprobs.MAX_TOP) {
            throw new InvalidSamplingException("prompt_logprobs", "must be in [0, " + Logprobs.MAX_TOP + "], got "
                    + promptLogprobs);
        }
        seed = seed == null ? OptionalLong.empty() : seed;
        stop = stop == null ? List.of() : List.copyOf(stop);
        for (String s : stop) {
            if (s.isEmpty()) {
                throw new InvalidSamplingException("stop", "stop strings must not be empty");
            }
        }
        logitBias = logitBias == null ? Map.of() : Map.copyOf(logitBias);
        for (Map.Entry<Integer, Float> e : logitBias.entrySet()) {
            if (e.getKey() < 0 || !(e.getValue() >= -100 && e.getValue() <= 100)) {
                throw new InvalidSamplingException("logit_bias", "token ids must be >= 0 and biases in [-100, 100], got "
                        + e.getKey() + ": " + e.getValue());
            }
        }
        stopTokenIds = stopTokenIds == null ? Set.of() : Set.copyOf(stopTokenIds);
        for (int id : stopTokenIds) {
            if (id < 0) {
                throw new InvalidSamplingException("stop_token_ids", "token ids must be >= 0, got " + id);
            }
        }
        allowedTokenIds = allowedTokenIds == null ? Set.of() : Set.copyOf(allowedTokenIds);
        for (int id : allowedTokenIds) {
            if (id < 0) {
                throw new InvalidSamplingException("allowed_token_ids", "token ids must be >= 0, got " + id);
            }
        }
    }

    /** DeepSeek-R1 recommended defaults: temperature 0.6, top_p 0.95, 4096 tokens. */
    public static SamplingParams defaults() {
        return builder().build();
    }

    public static Builder builder() {
        return new Builder();
    }

    public Builder toBuilder() {
        Builder b = new Builder();
        b.temperature = temperature;
        b.topP = topP;
        b.topK = topK;
        b.minP = minP;
        b.seed = seed;
        b.presencePenalty = presencePenalty;
        b.frequencyPenalty = frequencyPenalty;
        b.repetitionPenalty = repetitionPenalty;
        b.maxTokens = maxTokens;
        b.stop = stop;
        b.stopTokenIds = stopTokenIds;
        b.ignoreEos = ignoreEos;
        b.skipSpecialTokens = skipSpecialTokens;
        b.logprobs = logprobs;
        b.promptLogprobs = promptLogprobs;
        b.minTokens = minTokens;
        b.includeStopStrInOutput = includeStopStrInOutput;
        b.logitBias = logitBias;
        b.allowedTokenIds = allowedTokenIds;
        return b;
    }

    public boolean greedy() {
        return temperature == 0;
    }

    public boolean topKEnabled() {
        return topK > 0;
    }

    public boolean wantsLogprobs() {
        return logprobs >= 0;
    }

    public boolean hasPenalties() {
        return presencePenalty != 0 || frequencyPenalty != 0 || repetitionPenalty != 1;
    }

    /** The RNG for one sequence: seeded L64X128MixRandom when a seed is given (same seed, same draws). */
    public RandomGenerator newRandom() {
        RandomGeneratorFactory<RandomGenerator> f = RandomGeneratorFactory.of("L64X128MixRandom");
        return seed.isPresent() ? f.create(seed.getAsLong()) : f.create();
    }

    /** Mutable builder; {@link #build()} validates. */
    public static final class Builder {
        private double temperature = DEFAULT_TEMPERATURE;
        private double topP = DEFAULT_TOP_P;
        private int topK = 0;
        private double minP = 0;
        private OptionalLong seed = OptionalLong.empty();
        private double presencePenalty = 0;
        private double frequencyPenalty = 0;
        private double repetitionPenalty = 1;
        private int maxTokens = DEFAULT_MAX_TOKENS;
        private List<String> stop = List.of();
        private Set<Integer> stopTokenIds = Set.of();
        private boolean ignoreEos = false;
        private boolean skipSpecialTokens = true;
        private int logprobs = -1;
        private int promptLogprobs = -1;
        private int minTokens = 0;
        private boolean includeStopStrInOutput = false;
        private Map<Integer, Float> logitBias = Map.of();
        private Set<Integer> allowedTokenIds = Set.of();

        public Builder temperature(double v) { temperature = v; return this; }
        public Builder topP(double v) { topP = v; return this; }
        public Builder topK(int v) { topK = v; return this; }
        public Builder minP(double v) { minP = v; return this; }
        public Builder seed(long v) { seed = OptionalLong.of(v); return this; }
        public Builder seed(OptionalLong v) { seed = v; return this; }
        public Builder presencePenalty(double v) { presencePenalty = v; return this; }
        public Builder frequencyPenalty(double v) { frequencyPenalty = v; return this; }
        public Builder repetitionPenalty(double v) { repetitionPenalty = v; return this; }
        public Builder maxTokens(int v) { maxTokens = v; return this; }
        public Builder stop(List<String> v) { stop = v; return this; }
        public Builder stop(String... v) { stop = List.of(v); return this; }
        public Builder stopTokenIds(Set<Integer> v) { stopTokenIds = v; return this; }
        public Builder ignoreEos(boolean v) { ignoreEos = v; return this; }
        public Builder skipSpecialTokens(boolean v) { skipSpecialTokens = v; return this; }
        /** Report each token's log-probability with {@code v} top alternatives; -1 = off. */
        public Builder logprobs(int v) { logprobs = v; return this; }
        /** Report each prompt token's log-probability (after the first) with {@code v} alternatives; -1 = off. */
        public Builder promptLogprobs(int v) { promptLogprobs = v; return this; }
        public Builder minTokens(int v) { minTokens = v; return this; }
        public Builder includeStopStrInOutput(boolean v) { includeStopStrInOutput = v; return this; }
        public Builder logitBias(Map<Integer, Float> v) { logitBias = v; return this; }
        /** The only tokens that may be chosen (empty: any). */
        public Builder allowedTokenIds(Set<Integer> v) { allowedTokenIds = v; return this; }

        public SamplingParams build() {
            return new SamplingParams(temperature, topP, topK, minP, seed, presencePenalty, frequencyPenalty,
                    repetitionPenalty, maxTokens, stop, stopTokenIds, ignoreEos, skipSpecialTokens, logprobs,
                    promptLogprobs, minTokens, includeStopStrInOutput, logitBias, allowedTokenIds);
        }
    }
}
