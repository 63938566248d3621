package dev.epic.model;

import java.util.Arrays;

/**
 * A copy of some consecutive positions of a sequence's KV cache, every layer: what prefix caching keeps
 * of a prompt. A position's latent and rotated key depend only on the tokens up to it, so a block
 * copied from one sequence is exactly what another with the same leading tokens would compute. It
 * holds the values as its cache stored them (fp32, or bf16 bits), and goes back into caches of that
 * {@link KvCacheDtype}.
 */
public final class KvBlock {
    private final int positions;
    private final int rank;
    private final int rope;
    private final KvCacheDtype dtype;
    private final float[][] latent; // [layer][positions x rank], FP32
    private final float[][] kPe;    // [layer][positions x rope]
    private final short[][] latent16; // the same, BF16
    private final short[][] kPe16;

    private KvBlock(int positions, int rank, int rope, KvCacheDtype dtype, int layers) {
        this.positions = positions;
        this.rank = rank;
        this.rope = rope;
        this.dtype = dtype;
        boolean bf16 = dtype == KvCacheDtype.BF16;
        this.latent = bf16 ? null : new float[layers][];
        this.kPe = bf16 ? null : new float[layers][];
        this.latent16 = bf16 ? new short[layers][] : null;
        this.kPe16 = bf16 ? new short[layers][] : null;
    }

    /** Bytes a block of {@code positions} positions takes for a model of {@code layers} layers. */
    public static long bytes(int layers, int positions, int rank, int rope, KvCacheDtype dtype) {
        return (long) layers * positions * (rank + rope) * dtype.bytes();
    }

    /**
     * Copies positions [start + b * positions, start + (b + 1) * positions) of {@code cache} into block b,
     * for b in [0, count): one read of each layer's storage for all of them.
     */
    public static KvBlock[] copy(KvCache cache, int layers, int rank, int rope, int start, int positions, int count) {
        int end = start + positions * count;
        if (start < 0 || positions <= 0 || count < 0 || end > cache.length()) {
            throw new IllegalArgumentException("positions " + start + " to " + end + " of a cache holding "
                    + cache.length() + " cannot be kept (blocks of " + positions + ")");
        }
        KvBlock[] blocks = new KvBlock[count];
        for (int b = 0; b < count; b++) {
            blocks[b] = new KvBlock(positions, rank, rope, cache.dtype(), layers);
        }
        for (int layer = 0; layer < layers; layer++) {
            if (cache.dtype() == KvCacheDtype.BF16) {
                short[] lat = cache.latentsBf16(layer, end, rank, rope);
                short[] pe = cache.ropeKeysBf16(layer, end, rank, rope);
                for (int b = 0; b < count; b++) {
                    int p0 = start + b * positions;
                    blocks[b].latent16[layer] = Arrays.copyOfRange(lat, p0 * rank, (p0 + positions) * rank);
                    blocks[b].kPe16[layer] = Arrays.copyOfRange(pe, p0 * rope, (p0 + positions) * rope);
                }
            } else {
                float[] lat = cache.latents(layer, end, rank, rope);
                float[] pe = cache.ropeKeys(layer, end, rank, rope);
                for (int b = 0; b < count; b++) {
                    int p0 = start + b * positions;
                    blocks[b].latent[layer] = Arrays.copyOfRange(lat, p0 * rank, (p0 + positions) * rank);
                    blocks[b].kPe[layer] = Arrays.copyOfRange(pe, p0 * rope, (p0 + positions) * rope);
                }
            }
        }
        return blocks;
    }

    /** Writes this block into {@code cache} (of the block's dtype) at positions [pos, pos + positions), every layer. */
    public void writeTo(KvCache cache, int pos) {
        if (cache.dtype() != dtype) {
            throw new IllegalArgumentException("a block of a " + dtype.id() + " KV cache cannot go into a "
                    + cache.dtype().id() + " one");
        }
        int layers = latent != null ? latent.length : latent16.length;
        for (int layer = 0; layer < layers; layer++) {
            for (int p = 0; p < positions; p++) {
                if (latent != null) {
                    cache.write(layer, pos + p, latent[layer], p * rank, kPe[layer], p * rope);
                } else {
                    cache.writeBf16(layer, pos + p, latent16[layer], p * rank, kPe16[layer], p * rope);
                }
            }
        }
    }

    public int positions() {
        return positions;
    }

    public KvCacheDtype dtype() {
        return dtype;
    }

    public long bytes() {
        return bytes(layers(), positions, rank, rope, dtype);
    }

    /** Layers it holds: its cache's (the decoder's, and the MTP layer's when that sequence drafted with it). */
    public int layers() {
        return latent != null ? latent.length : latent16.length;
    }
}
