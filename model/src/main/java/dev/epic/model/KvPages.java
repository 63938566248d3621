package dev.epic.model;

/**
 * Positions [0, end) of one layer of a KV cache as attention reads them in place: page k holds
 * positions [k * positions, (k + 1) * positions) from index 0, latents [positions x rank] and rotated
 * keys [positions x rope], as fp32 ({@code latent}, {@code kPe}) or, for a bf16 cache, bf16 bits
 * ({@code latent16}, {@code kPe16}); the other pair is null.
 */
public record KvPages(int positions, float[][] latent, float[][] kPe, short[][] latent16, short[][] kPe16) {
    /** Positions [0, end) in one contiguous page of each. */
    public static KvPages contiguous(float[] latent, float[] kPe) {
        return new KvPages(Integer.MAX_VALUE, new float[][] {latent}, new float[][] {kPe}, null, null);
    }

    /** Bf16 bits of positions [0, end) in one contiguous page of each. */
    public static KvPages contiguous(short[] latent, short[] kPe) {
        return new KvPages(Integer.MAX_VALUE, null, null, new short[][] {latent}, new short[][] {kPe});
    }

    public boolean bf16() {
        return latent16 != null;
    }

    /** The page holding position t. */
    public int page(int t) {
        return t / positions;
    }

    /** Position t's index within its page. */
    public int offset(int t) {
        return t % positions;
    }
}
