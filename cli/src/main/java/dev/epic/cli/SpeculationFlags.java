package dev.epic.cli;

import dev.epic.coordinator.scheduler.PromptLookup;
import picocli.CommandLine.Option;

/** Speculative decoding flags (named after vLLM's speculative-config keys: method, num_speculative_tokens, ngram's). */
final class SpeculationFlags {
    @Option(names = "--num-speculative-tokens", defaultValue = "0", paramLabel = "K", description = "speculative "
            + "decoding: up to K drafted tokens (by prompt lookup, or by the MTP layer with --speculative-method mtp) "
            + "are checked in one step; the tokens are those that would be chosen without it (default ${DEFAULT-VALUE}: "
            + "off)")
    int speculativeTokens;

    @Option(names = "--speculative-method", defaultValue = "ngram", paramLabel = "ngram|mtp", description = "how "
            + "drafts are made: ngram, by prompt lookup (--num-speculative-tokens K); mtp, by the checkpoint's "
            + "multi-token-prediction layer (DeepSeek's MTP), chained on its own output for K > 1 (default 1 with mtp); "
            + "with attention workers, they run its attention too (default ${DEFAULT-VALUE})")
    String method;

    @Option(names = "--prompt-lookup-max", defaultValue = "4", paramLabel = "N",
            description = "longest suffix of a sequence looked up to draft from (default ${DEFAULT-VALUE})")
    int lookupMax;

    @Option(names = "--prompt-lookup-min", defaultValue = "2", paramLabel = "N",
            description = "shortest suffix looked up (default ${DEFAULT-VALUE})")
    int lookupMin;

    @Option(names = "--speculative-disable-by-batch-size", defaultValue = "0", paramLabel = "N",
            description = "no drafts in a step while more than N sequences run (default ${DEFAULT-VALUE}: no limit)")
    int disableByBatchSize;

    /** Refuses MTP drafts for a checkpoint without an MTP layer, before anything starts. */
    static void requireMtpLayer(PromptLookup lookup, dev.epic.model.config.ModelConfig c) {
        String missing = dev.epic.model.layers.Mtp.missing(c);
        if (lookup.mtp() && missing != null) {
            throw new IllegalArgumentException("--speculative-method mtp: " + missing);
        }
    }

    PromptLookup lookup() {
        Flags.requireNonNegative("--num-speculative-tokens", speculativeTokens);
        Flags.requireNonNegative("--speculative-disable-by-batch-size", disableByBatchSize);
        if ("mtp".equals(method)) { // K drafts a step, the MTP layer chained on itself; 0 means 1
            return PromptLookup.mtp(Math.max(1, speculativeTokens), disableByBatchSize);
        }
        if (!"ngram".equals(method)) {
            throw new IllegalArgumentException("--speculative-method must be ngram or mtp, got '" + method + "'");
        }
        Flags.requirePositive("--prompt-lookup-min", lookupMin);
        if (lookupMax < lookupMin) {
            throw new IllegalArgumentException("--prompt-lookup-max must be >= --prompt-lookup-min (" + lookupMin
                    + "), got " + lookupMax);
        }
        return new PromptLookup(speculativeTokens, lookupMin, lookupMax, disableByBatchSize);
    }
}
