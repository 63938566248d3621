package dev.epic.model;

/**
 * The attention state of one sequence: per layer and position, only what MLA needs to attend to it
 * later, i.e. the compressed latent {@code c} (kv_lora_rank floats, stored <b>after</b>
 * kv_a_layernorm, as DeepSeek's reference does) and the rotated shared key {@code k_pe}
 * (qk_rope_head_dim floats). Keys and values per head are never materialised: attention runs in the
 * absorbed form against the latent. A device-resident cache would implement the same interface.
 */
public interface KvCache {
    /** Positions held: a step for this sequence must start at a position <= length(). */
    int length();

    /** How this cache stores its values (FP32 unless it says otherwise). */
    default KvCacheDtype dtype() {
        return KvCacheDtype.FP32;
    }

    /**
     * Stores position {@code pos} of {@code layer} (may be beyond length() during a step), rounded to
     * the cache's {@link #dtype()}.
     */
    void write(int layer, int pos, float[] latent, int latentOff, float[] kPe, int kPeOff);

    /** {@link #write} of bf16 bits as a {@link KvCacheDtype#BF16} cache stores them (a kept block's); others refuse. */
    default void writeBf16(int layer, int pos, short[] latent, int latentOff, short[] kPe, int kPeOff) {
        throw new UnsupportedOperationException("a " + dtype().id() + " KV cache takes no bf16 values");
    }

    /** Copies positions [0, end) of {@code layer} into latent[end x rank] and kPe[end x rope], packed. */
    void read(int layer, int end, float[] latent, float[] kPe);

    /**
     * Positions [0, end) of {@code layer}'s latents as [end x rank] packed from index 0 (maybe longer),
     * a copy; attention reads them in place through {@link #pages}. The default copies through {@link #read}.
     */
    default float[] latents(int layer, int end, int rank, int rope) {
        float[] lat = new float[end * rank];
        read(layer, end, lat, new float[end * rope]);
        return lat;
    }

    /** Like {@link #latents} for the rotated shared keys: [end x rope]. */
    default float[] ropeKeys(int layer, int end, int rank, int rope) {
        float[] pe = new float[end * rope];
        read(layer, end, new float[end * rank], pe);
        return pe;
    }

    /**
     * Like {@link #latents} for a {@link KvCacheDtype#BF16} cache: [end x rank] bf16 bits. Other caches
     * do not hold bf16 values and refuse.
     */
    default short[] latentsBf16(int layer, int end, int rank, int rope) {
        throw new UnsupportedOperationException("a " + dtype().id() + " KV cache holds no bf16 latents");
    }

    /** Like {@link #latentsBf16} for the rotated shared keys: [end x rope]. */
    default short[] ropeKeysBf16(int layer, int end, int rank, int rope) {
        throw new UnsupportedOperationException("a " + dtype().id() + " KV cache holds no bf16 rope keys");
    }

    /**
     * Positions [0, end) of {@code layer} as attention reads them: a paged cache's own pages (zero copy,
     * valid until the next write to this cache). The default is one page, copied by {@link #latents} and
     * {@link #ropeKeys} (or their bf16 forms).
     */
    default KvPages pages(int layer, int end, int rank, int rope) {
        return dtype() == KvCacheDtype.BF16
                ? KvPages.contiguous(latentsBf16(layer, end, rank, rope), ropeKeysBf16(layer, end, rank, rope))
                : KvPages.contiguous(latents(layer, end, rank, rope), ropeKeys(layer, end, rank, rope));
    }

    /**
     * Makes room for exactly {@code positions} positions ahead of time (more if it holds more already):
     * the room a KV budget counts, granted before the step that needs it so that no write overshoots the
     * budget (and, for a cache on an attention worker, so the worker can refuse it before the step). The
     * default does nothing.
     */
    default void reserve(int positions) {}

    /**
     * The most positions the sequence may reach (prompt + max tokens): where caches are placed among
     * several holders, the one with room for it is chosen. The default ignores it.
     */
    default void expectAtMost(int positions) {}

    /**
     * Positions the cache holds memory for (at least {@link #length()}): what it costs in the KV cache
     * budget. The default is its length.
     */
    default int capacity() {
        return length();
    }

    /**
     * Positions of its memory that prefix blocks hold too ({@link KvBlock}, kept and not released): the
     * prefix cache's budget counts them, so a KV budget counts {@link #capacity()} less these. The default:
     * none.
     */
    default int keptPositions() {
        return 0;
    }

    /**
     * Where the cache's memory is held when that has a budget of its own (the attention worker it was
     * placed on), or null: then only the scheduler's total budget counts it.
     */
    default KvPool pool() {
        return null;
    }

    /** Sets the number of valid positions (after a step: start + chunk length; lower to roll back). */
    void setLength(int length);

    /**
     * The sequence is over: free what the cache holds outside this process (a remote cache's
     * storage on its attention worker). Heap caches need nothing; the garbage collector frees them.
     */
    default void release() {}
}
