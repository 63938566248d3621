package dev.epic.model;

import java.util.Arrays;

/**
 * A copy of some consecutive positions of a sequence's KV cache, every layer: what prefix caching keeps
 * of a prompt. A position's latent and rotated key depend only on the tokens up to it, so a block
 * copied from one sequence is exactly what another with the same leading tokens would compute.
 *
 * @param latent [layer][positions x rank]
 * @param kPe    [layer][positions x rope]
 */
public record KvBlock(int positions, int rank, int rope, float[][] latent, float[][] kPe) {
    /** Bytes a block of {@code positions} positions takes for a model of {@code layers} layers. */
    public static long bytes(int layers, int positions, int rank, int rope) {
        return (long) layers * positions * (rank + rope) * Float.BYTES;
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
            blocks[b] = new KvBlock(positions, rank, rope, new float[layers][], new float[layers][]);
        }
        for (int layer = 0; layer < layers; layer++) {
            float[] lat = cache.latents(layer, end, rank, rope);
            float[] pe = cache.ropeKeys(layer, end, rank, rope);
            for (int b = 0; b < count; b++) {
                int p0 = start + b * positions;
                blocks[b].latent[layer] = Arrays.copyOfRange(lat, p0 * rank, (p0 + positions) * rank);
                blocks[b].kPe[layer] = Arrays.copyOfRange(pe, p0 * rope, (p0 + positions) * rope);
            }
        }
        return blocks;
    }

    /** Writes this block into {@code cache} at positions [pos, pos + positions), every layer. */
    public void writeTo(KvCache cache, int pos) {
        for (int layer = 0; layer < latent.length; layer++) {
            for (int p = 0; p < positions; p++) {
                cache.write(layer, pos + p, latent[layer], p * rank, kPe[layer], p * rope);
            }
        }
    }

    public long bytes() {
        return bytes(latent.length, positions, rank, rope);
    }
}
