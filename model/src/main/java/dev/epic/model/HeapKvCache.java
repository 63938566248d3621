package dev.epic.model;

import java.util.Arrays;

/** A {@link KvCache} in growable fp32 arrays, one pair per layer. */
public final class HeapKvCache implements KvCache {
    /** Positions a new cache holds before it first grows. */
    private static final int INITIAL_POSITIONS = 16;

    /** Positions a new cache for at most {@code maxPositions} holds (what it costs before it grows). */
    public static int initialCapacity(int maxPositions) {
        return Math.min(INITIAL_POSITIONS, maxPositions);
    }

    private final int rank;
    private final int rope;
    private final int maxPositions;
    private final float[][] latent;
    private final float[][] kPe;
    private int capacity;
    private int length;

    /** Bytes one position takes: every layer's latent and rope key, in fp32. */
    public static long bytesPerPosition(dev.epic.model.config.ModelConfig c) {
        return (long) c.numHiddenLayers() * (c.kvLoraRank() + c.qkRopeHeadDim()) * Float.BYTES;
    }

    /**
     * The default budget for the KV caches a process holds (coordinator or attention worker): half the
     * JVM's maximum heap; beside the coordinator's quarter for the prefix cache a quarter is left for the rest.
     */
    public static long defaultBudgetBytes() {
        return Runtime.getRuntime().maxMemory() / 2;
    }

    /** An empty cache shaped for model {@code c}: its layers, latent rank, rope width and context. */
    public static HeapKvCache forModel(dev.epic.model.config.ModelConfig c) {
        return new HeapKvCache(c.numHiddenLayers(), c.kvLoraRank(), c.qkRopeHeadDim(), c.maxPositionEmbeddings());
    }

    public HeapKvCache(int layers, int rank, int rope, int maxPositions) {
        this.rank = rank;
        this.rope = rope;
        this.maxPositions = maxPositions;
        this.latent = new float[layers][];
        this.kPe = new float[layers][];
        this.capacity = initialCapacity(maxPositions);
        for (int l = 0; l < layers; l++) {
            latent[l] = new float[capacity * rank];
            kPe[l] = new float[capacity * rope];
        }
    }

    @Override
    public int length() {
        return length;
    }

    private void ensure(int positions) {
        if (positions <= capacity) {
            return;
        }
        if (positions > maxPositions) {
            throw new IllegalArgumentException("KV cache holds at most " + maxPositions + " positions, asked for "
                    + positions);
        }
        resize(grownCapacity(capacity, positions, maxPositions));
    }

    private void resize(int positions) {
        capacity = positions;
        for (int l = 0; l < latent.length; l++) {
            latent[l] = Arrays.copyOf(latent[l], capacity * rank);
            kPe[l] = Arrays.copyOf(kPe[l], capacity * rope);
        }
    }

    /** Positions a cache of {@code capacity} holds once grown for {@code positions} (it doubles, within max). */
    public static int grownCapacity(int capacity, int positions, int maxPositions) {
        return positions <= capacity ? capacity : (int) Math.min(maxPositions, Math.max(positions, 2L * capacity));
    }

    /** Positions a cache grows by at most when doubling does not fit in a KV budget (four 16-position pages). */
    public static final int TIGHT_GROWTH = 64;

    /**
     * {@link #grownCapacity} when doubling does not fit in a KV budget: grown for {@code positions} and
     * at most {@link #TIGHT_GROWTH} more, within max.
     */
    public static int tightCapacity(int capacity, int positions, int maxPositions) {
        return positions <= capacity ? capacity
                : (int) Math.min(maxPositions, Math.max(positions, (long) capacity + Math.min(capacity, TIGHT_GROWTH)));
    }

    /** Positions the arrays hold now (at least {@link #length()}): what the cache costs in memory. */
    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public void reserve(int positions) {
        int target = Math.min(positions, maxPositions);
        if (target > capacity) {
            resize(target);
        }
    }

    @Override
    public void write(int layer, int pos, float[] lat, int latOff, float[] pe, int peOff) {
        ensure(pos + 1);
        System.arraycopy(lat, latOff, latent[layer], pos * rank, rank);
        System.arraycopy(pe, peOff, kPe[layer], pos * rope, rope);
    }

    @Override
    public void read(int layer, int end, float[] lat, float[] pe) {
        System.arraycopy(latent[layer], 0, lat, 0, end * rank);
        System.arraycopy(kPe[layer], 0, pe, 0, end * rope);
    }

    /** The layer's latent storage itself: attention reads it in place. */
    @Override
    public float[] latents(int layer, int end, int rank, int rope) {
        check(end, rank, rope);
        return latent[layer];
    }

    @Override
    public float[] ropeKeys(int layer, int end, int rank, int rope) {
        check(end, rank, rope);
        return kPe[layer];
    }

    private void check(int end, int rank, int rope) {
        if (rank != this.rank || rope != this.rope || end > capacity) {
            throw new IllegalArgumentException("cache of rank " + this.rank + ", rope " + this.rope + ", capacity "
                    + capacity + " asked for rank " + rank + ", rope " + rope + ", " + end + " positions");
        }
    }

    @Override
    public void setLength(int length) {
        if (length < 0 || length > capacity) {
            throw new IllegalArgumentException("cache length " + length + " outside [0, " + capacity + "]");
        }
        this.length = length;
    }

    /** Bytes of cache storage per position (all layers). */
    public long bytesPerPosition() {
        return (long) latent.length * (rank + rope) * Float.BYTES;
    }
}
