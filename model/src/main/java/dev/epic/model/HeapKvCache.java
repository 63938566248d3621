package dev.epic.model;

import dev.epic.kernels.Bf16;
import java.util.Arrays;

/**
 * A {@link KvCache} in growable arrays, one pair per layer: fp32, or bf16 bits in shorts
 * ({@link KvCacheDtype#BF16}: rounded on write, widened where attention reads them).
 */
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
    private final KvCacheDtype dtype;
    private final float[][] latent; // FP32
    private final float[][] kPe;
    private final short[][] latent16; // BF16
    private final short[][] kPe16;
    private int capacity;
    private int length;


    /**
     * The default budget for the KV caches a process holds (coordinator or attention worker): half the
     * JVM's maximum heap; beside the coordinator's quarter for the prefix cache a quarter is left for the rest.
     */
    public static long defaultBudgetBytes() {
        return Runtime.getRuntime().maxMemory() / 2;
    }

    /** Bytes one position of an fp32 cache takes: every layer's latent and rope key. */
    public static long bytesPerPosition(dev.epic.model.config.ModelConfig c) {
        return KvCacheDtype.FP32.bytesPerPosition(c);
    }

    /** An empty cache shaped for model {@code c}: its layers, latent rank, rope width and context. */
    public static HeapKvCache forModel(dev.epic.model.config.ModelConfig c, KvCacheDtype dtype) {
        return forModel(c, dtype, c.numHiddenLayers());
    }

    /** As {@link #forModel(dev.epic.model.config.ModelConfig, KvCacheDtype)} with {@code layers} layers (the MTP layer's too). */
    public static HeapKvCache forModel(dev.epic.model.config.ModelConfig c, KvCacheDtype dtype, int layers) {
        return new HeapKvCache(layers, c.kvLoraRank(), c.qkRopeHeadDim(), c.maxPositionEmbeddings(), dtype);
    }

    public HeapKvCache(int layers, int rank, int rope, int maxPositions) {
        this(layers, rank, rope, maxPositions, KvCacheDtype.FP32);
    }

    public HeapKvCache(int layers, int rank, int rope, int maxPositions, KvCacheDtype dtype) {
        this.rank = rank;
        this.rope = rope;
        this.maxPositions = maxPositions;
        this.dtype = dtype;
        this.capacity = initialCapacity(maxPositions);
        boolean bf16 = dtype == KvCacheDtype.BF16;
        this.latent = bf16 ? null : new float[layers][capacity * rank];
        this.kPe = bf16 ? null : new float[layers][capacity * rope];
        this.latent16 = bf16 ? new short[layers][capacity * rank] : null;
        this.kPe16 = bf16 ? new short[layers][capacity * rope] : null;
    }

    @Override
    public KvCacheDtype dtype() {
        return dtype;
    }

    /** Layers it holds: the decoder's, and the MTP layer's when the sequence drafts with it. */
    public int layers() {
        return latent != null ? latent.length : latent16.length;
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
        for (int l = 0; l < layers(); l++) {
            if (latent != null) {
                latent[l] = Arrays.copyOf(latent[l], capacity * rank);
                kPe[l] = Arrays.copyOf(kPe[l], capacity * rope);
            } else {
                latent16[l] = Arrays.copyOf(latent16[l], capacity * rank);
                kPe16[l] = Arrays.copyOf(kPe16[l], capacity * rope);
            }
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
        if (latent != null) {
            System.arraycopy(lat, latOff, latent[layer], pos * rank, rank);
            System.arraycopy(pe, peOff, kPe[layer], pos * rope, rope);
        } else {
            Bf16.round(lat, latOff, latent16[layer], pos * rank, rank);
            Bf16.round(pe, peOff, kPe16[layer], pos * rope, rope);
        }
    }

    @Override
    public void writeBf16(int layer, int pos, short[] lat, int latOff, short[] pe, int peOff) {
        if (latent16 == null) {
            KvCache.super.writeBf16(layer, pos, lat, latOff, pe, peOff);
            return;
        }
        ensure(pos + 1);
        System.arraycopy(lat, latOff, latent16[layer], pos * rank, rank);
        System.arraycopy(pe, peOff, kPe16[layer], pos * rope, rope);
    }

    @Override
    public void read(int layer, int end, float[] lat, float[] pe) {
        if (latent != null) {
            System.arraycopy(latent[layer], 0, lat, 0, end * rank);
            System.arraycopy(kPe[layer], 0, pe, 0, end * rope);
        } else {
            Bf16.widen(latent16[layer], 0, lat, 0, end * rank);
            Bf16.widen(kPe16[layer], 0, pe, 0, end * rope);
        }
    }

    /** The layer's latent storage itself, where it is fp32: attention reads it in place (a bf16 cache widens a copy). */
    @Override
    public float[] latents(int layer, int end, int rank, int rope) {
        check(end, rank, rope);
        return latent != null ? latent[layer] : KvCache.super.latents(layer, end, rank, rope);
    }

    @Override
    public float[] ropeKeys(int layer, int end, int rank, int rope) {
        check(end, rank, rope);
        return kPe != null ? kPe[layer] : KvCache.super.ropeKeys(layer, end, rank, rope);
    }

    @Override
    public short[] latentsBf16(int layer, int end, int rank, int rope) {
        check(end, rank, rope);
        return latent16 != null ? latent16[layer] : KvCache.super.latentsBf16(layer, end, rank, rope);
    }

    @Override
    public short[] ropeKeysBf16(int layer, int end, int rank, int rope) {
        check(end, rank, rope);
        return kPe16 != null ? kPe16[layer] : KvCache.super.ropeKeysBf16(layer, end, rank, rope);
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
        return (long) layers() * (rank + rope) * dtype.bytes();
    }
}
