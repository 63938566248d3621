package dev.epic.cli;

import dev.epic.proto.SamplingParams;
import java.util.List;
import picocli.CommandLine.Option;

/** Sampling flags shared by generating commands; unset flags take the server's defaults. */
final class SamplingOptions {
    @Option(names = "--temperature", paramLabel = "T", description = "0 = greedy (server default 0.6)")
    Float temperature;

    @Option(names = "--top-p", paramLabel = "P", description = "nucleus mass in (0, 1] (server default 0.95)")
    Float topP;

    @Option(names = "--top-k", paramLabel = "K", description = "keep the K most likely tokens (0 = off)")
    Integer topK;

    @Option(names = "--min-p", paramLabel = "P", description = "drop tokens below P x the top probability")
    Float minP;

    @Option(names = "--seed", paramLabel = "N", description = "RNG seed: the same seed gives the same tokens")
    Long seed;

    @Option(names = "--max-tokens", paramLabel = "N", description = "completion token budget (server default: the rest of the context)")
    Integer maxTokens;

    @Option(names = "--stop", paramLabel = "TEXT", description = "stop string (repeatable)")
    List<String> stop;

    @Option(names = "--ignore-eos", description = "keep generating past end-of-sentence")
    boolean ignoreEos;

    @Option(names = "--logit-bias", paramLabel = "ID=BIAS", description = "add BIAS (-100 to 100) to token ID's logit (repeatable)")
    java.util.Map<Integer, Float> logitBias;

    SamplingParams toProto() {
        SamplingParams.Builder b = SamplingParams.newBuilder();
        if (temperature != null) {
            b.setTemperature(temperature);
        }
        if (topP != null) {
            b.setTopP(topP);
        }
        if (topK != null) {
            b.setTopK(topK);
        }
        if (minP != null) {
            b.setMinP(minP);
        }
        if (seed != null) {
            b.setSeed(seed);
        }
        if (maxTokens != null) {
            if (maxTokens < 1) {
                throw new IllegalArgumentException("--max-tokens must be >= 1, got " + maxTokens);
            }
            b.setMaxTokens(maxTokens);
        }
        if (stop != null) {
            b.addAllStop(stop);
        }
        if (logitBias != null) {
            logitBias.forEach((id, bias) -> {
                if (id < 0) {
                    throw new IllegalArgumentException("--logit-bias token ids must be >= 0, got " + id);
                }
                b.putLogitBias(id, bias);
            });
        }
        return b.setIgnoreEos(ignoreEos).build();
    }
}
