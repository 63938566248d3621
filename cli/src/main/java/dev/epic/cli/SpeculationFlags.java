package dev.epic.cli;

import dev.epic.coordinator.scheduler.PromptLookup;
import picocli.CommandLine.Option;

/** Speculative decoding flags (named after vLLM's ngram speculative-config keys). */
final class SpeculationFlags {
    @Option(names = "--num-speculative-tokens", defaultValue = "0", paramLabel = "K", description = "speculative "
            + "decoding by prompt lookup: up to K tokens drafted from earlier in each sequence are checked in one step; "
            + "the tokens are those that would be chosen without it (default ${DEFAULT-VALUE}: off)")
    int speculativeTokens;

    @Option(names = "--prompt-lookup-max", defaultValue = "4", paramLabel = "N",
            description = "longest suffix of a sequence looked up to draft from (default ${DEFAULT-VALUE})")
    int lookupMax;

    @Option(names = "--prompt-lookup-min", defaultValue = "2", paramLabel = "N",
            description = "shortest suffix looked up (default ${DEFAULT-VALUE})")
    int lookupMin;

    @Option(names = "--speculative-disable-by-batch-size", defaultValue = "0", paramLabel = "N",
            description = "no drafts in a step while more than N sequences run (default ${DEFAULT-VALUE}: no limit)")
    int disableByBatchSize;

    PromptLookup lookup() {
        Flags.requireNonNegative("--num-speculative-tokens", speculativeTokens);
        Flags.requirePositive("--prompt-lookup-min", lookupMin);
        if (lookupMax < lookupMin) {
            throw new IllegalArgumentException("--prompt-lookup-max must be >= --prompt-lookup-min (" + lookupMin
                    + "), got " + lookupMax);
        }
        Flags.requireNonNegative("--speculative-disable-by-batch-size", disableByBatchSize);
        return new PromptLookup(speculativeTokens, lookupMin, lookupMax, disableByBatchSize);
    }
}
