package dev.epic.model;

/**
 * The attention state of one sequence: per layer and position, only what MLA needs to attend to it
 * later, i.e. the compressed latent {@code c} (kv_lora_rank floats, stored <b>after</b>
 * kv_a_layernorm, as DeepSeek's reference does) and the rotated shared key {@code k_pe}
 * (qk_rope_head_dim floats). Keys and values per head are never materialised: attention runs in the
 * absorbed form against the latent. A device-resident or paged cache implements the same interface.
 */
public interface KvCache {
    /** Positions held: a step for this sequence must start at a position <= length(). */
    int length();

    /** Stores position {@code pos} of {@code layer} (may be beyond length() during a step). */
    void write(int layer, int pos, float[] latent, int latentOff, float[] kPe, int kPeOff);

    /** Copies positions [0, end) of {@code layer} into latent[end x rank] and kPe[end x rope], packed. */
    void read(int layer, int end, float[] latent, float[] kPe);

    /** Sets the number of valid positions (after a step: start + chunk length; lower to roll back). */
    void setLength(int length);
}
