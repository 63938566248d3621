package dev.epic.cli;

import dev.epic.model.KvCacheDtype;
import picocli.CommandLine.Option;

/** How the KV caches store positions, for every command that makes caches or serves. */
final class KvCacheFlags {
    @Option(names = "--kv-cache-dtype", defaultValue = "auto", paramLabel = "auto|fp32|bf16",
            description = "how KV caches store each position's latent and rope key: fp32 (auto: what attention "
                    + "computed, the verifier's precision) or bf16 (half the memory per position and half the bytes "
                    + "attention reads; rounded to nearest even, as DeepSeek's reference keeps its caches); give "
                    + "attention workers the same (default ${DEFAULT-VALUE})")
    String kvCacheDtype;

    KvCacheDtype dtype() {
        return KvCacheDtype.parse(kvCacheDtype);
    }
}
