package dev.epic.model;

import dev.epic.kernels.Bf16;
import java.util.ArrayList;
import java.util.List;

/**
 * A {@link KvCache} in this process's heap, in {@link KvPage pages} of {@link KvPage#POSITIONS}
 * positions (every layer each): fp32, or bf16 bits in shorts ({@link KvCacheDtype#BF16}: rounded on
 * write, widened where attention reads them). Growing adds pages and never copies what the cache holds.
 * Pages a prefix block keeps are shared with every cache that starts from that block, and copied by a
 * cache only when it writes into one ({@link KvPage}).
 *
 * <p>Its {@link #capacity()} is the room granted to it, what a KV budget counts: pages are allocated as
 * positions are written, so the memory it holds never exceeds what is counted.
 */
public final class HeapKvCache implements KvCache {
    /** Positions a new cache holds before it first grows. */
    private static final int INITIAL_POSITIONS = KvPage.POSITIONS;

    /** Positions a new cache for at most {@code maxPositions} holds (what it costs before it grows). */
    public static int initialCapacity(int maxPositions) {
        return Math.min(INITIAL_POSITIONS, maxPositions);
    }

    private final int layers;
    private final int rank;
    private final int rope;
    private final int maxPositions;
    private final KvCacheDtype dtype;
    private final List<KvPage> pages = new ArrayList<>();
    private int capacity;
    private int length;
    /** {@link #keptPositions()}'s count of leading kept pages, valid while {@link KvPage#keptChanges()} is keptAt. */
    private int keptPages;
    private long keptAt = -1;


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
        this.layers = layers;
        this.rank = rank;
        this.rope = rope;
        this.maxPositions = maxPositions;
        this.dtype = dtype;
        this.capacity = initialCapacity(maxPositions);
    }

    @Override
    public KvCacheDtype dtype() {
        return dtype;
    }

    /** Layers it holds: the decoder's, and the MTP layer's when the sequence drafts with it. */
    public int layers() {
        return layers;
    }

    @Override
    public int length() {
        return length;
    }

    /** Grows the granted room to hold {@code positions}, to the page that holds the last, within the context. */
    private void ensure(int positions) {
        if (positions <= capacity) {
            return;
        }
        if (positions > maxPositions) {
            throw new IllegalArgumentException("KV cache holds at most " + maxPositions + " positions, asked for "
                    + positions);
        }
        capacity = grownCapacity(capacity, positions, maxPositions);
    }

    /**
     * Positions a cache of {@code capacity} holds once grown for {@code positions}: whole pages, within
     * max. Growing copies nothing, so a cache grows a page at a time and counts no more than it may hold.
     */
    public static int grownCapacity(int capacity, int positions, int maxPositions) {
        return positions <= capacity ? capacity
                : (int) Math.min(maxPositions, (long) Math.ceilDiv(positions, KvPage.POSITIONS) * KvPage.POSITIONS);
    }

    /** Positions granted (at least {@link #length()}): what the cache costs in a KV budget. */
    @Override
    public int capacity() {
        return capacity;
    }

    @Override
    public void reserve(int positions) {
        capacity = Math.max(capacity, Math.min(positions, maxPositions));
    }

    /** The page holding {@code pos}, allocated (with any before it) if new, copied first if frozen. */
    private KvPage writable(int pos) {
        ensure(pos + 1);
        int p = pos / KvPage.POSITIONS;
        while (pages.size() <= p) {
            pages.add(new KvPage(layers, rank, rope, dtype));
        }
        KvPage page = pages.get(p);
        if (page.frozen()) { // kept by prefix caching, maybe shared: this cache's writes go to its own copy
            page = page.copy();
            pages.set(p, page);
            keptAt = -1;
        }
        return page;
    }

    @Override
    public void write(int layer, int pos, float[] lat, int latOff, float[] pe, int peOff) {
        KvPage page = writable(pos);
        int i = pos % KvPage.POSITIONS;
        if (page.latent != null) {
            System.arraycopy(lat, latOff, page.latent[layer], i * rank, rank);
            System.arraycopy(pe, peOff, page.kPe[layer], i * rope, rope);
        } else {
            Bf16.round(lat, latOff, page.latent16[layer], i * rank, rank);
            Bf16.round(pe, peOff, page.kPe16[layer], i * rope, rope);
        }
    }

    @Override
    public void writeBf16(int layer, int pos, short[] lat, int latOff, short[] pe, int peOff) {
        if (dtype != KvCacheDtype.BF16) {
            KvCache.super.writeBf16(layer, pos, lat, latOff, pe, peOff);
            return;
        }
        KvPage page = writable(pos);
        int i = pos % KvPage.POSITIONS;
        System.arraycopy(lat, latOff, page.latent16[layer], i * rank, rank);
        System.arraycopy(pe, peOff, page.kPe16[layer], i * rope, rope);
    }

    @Override
    public void read(int layer, int end, float[] lat, float[] pe) {
        cover(end);
        for (int p0 = 0; p0 < end; p0 += KvPage.POSITIONS) {
            KvPage page = pages.get(p0 / KvPage.POSITIONS);
            int n = Math.min(KvPage.POSITIONS, end - p0);
            if (page.latent != null) {
                System.arraycopy(page.latent[layer], 0, lat, p0 * rank, n * rank);
                System.arraycopy(page.kPe[layer], 0, pe, p0 * rope, n * rope);
            } else {
                Bf16.widen(page.latent16[layer], 0, lat, p0 * rank, n * rank);
                Bf16.widen(page.kPe16[layer], 0, pe, p0 * rope, n * rope);
            }
        }
    }

    @Override
    public short[] latentsBf16(int layer, int end, int rank, int rope) {
        return dtype == KvCacheDtype.BF16 ? gather(pages(layer, end, rank, rope).latent16(), end, rank)
                : KvCache.super.latentsBf16(layer, end, rank, rope);
    }

    @Override
    public short[] ropeKeysBf16(int layer, int end, int rank, int rope) {
        return dtype == KvCacheDtype.BF16 ? gather(pages(layer, end, rank, rope).kPe16(), end, rope)
                : KvCache.super.ropeKeysBf16(layer, end, rank, rope);
    }

    private static short[] gather(short[][] pages, int end, int width) {
        short[] out = new short[end * width];
        for (int p0 = 0; p0 < end; p0 += KvPage.POSITIONS) {
            System.arraycopy(pages[p0 / KvPage.POSITIONS], 0, out, p0 * width,
                    Math.min(KvPage.POSITIONS, end - p0) * width);
        }
        return out;
    }

    /** The pages of positions [0, end) of {@code layer} themselves: attention reads them in place. */
    @Override
    public KvPages pages(int layer, int end, int rank, int rope) {
        if (rank != this.rank || rope != this.rope) {
            throw new IllegalArgumentException("cache of rank " + this.rank + ", rope " + this.rope + " asked for rank "
                    + rank + ", rope " + rope);
        }
        cover(end);
        int n = Math.ceilDiv(end, KvPage.POSITIONS);
        if (dtype == KvCacheDtype.BF16) {
            short[][] lat = new short[n][];
            short[][] pe = new short[n][];
            for (int p = 0; p < n; p++) {
                lat[p] = pages.get(p).latent16[layer];
                pe[p] = pages.get(p).kPe16[layer];
            }
            return new KvPages(KvPage.POSITIONS, null, null, lat, pe);
        }
        float[][] lat = new float[n][];
        float[][] pe = new float[n][];
        for (int p = 0; p < n; p++) {
            lat[p] = pages.get(p).latent[layer];
            pe[p] = pages.get(p).kPe[layer];
        }
        return new KvPages(KvPage.POSITIONS, lat, pe, null, null);
    }

    /**
     * Allocates the pages of positions [0, end) not written yet (zero, as a position never written reads),
     * within the granted room.
     */
    private void cover(int end) {
        if (end > capacity) {
            throw new IllegalArgumentException("a KV cache of capacity " + capacity + " asked for " + end + " positions");
        }
        while (pages.size() * KvPage.POSITIONS < end) {
            pages.add(new KvPage(layers, rank, rope, dtype));
        }
    }

    /**
     * Positions of the leading pages that kept prefix blocks hold (shared with them, counted in the prefix
     * cache's budget). Kept blocks are a prompt's first blocks, so they are this cache's first pages; the
     * count stops at the first page of its own, which can only count a kept page as its own (the safe side).
     */
    @Override
    public int keptPositions() {
        long changes = KvPage.keptChanges(); // the scheduler asks several times a step: count again only after a change
        if (changes != keptAt) {
            int n = 0;
            while (n < pages.size() && pages.get(n).kept()) {
                n++;
            }
            keptPages = n;
            keptAt = changes;
        }
        return Math.min(keptPages * KvPage.POSITIONS, capacity);
    }

    /** Pages this cache holds memory for (shared ones included): for tests. */
    int pagesHeld() {
        return pages.size();
    }

    /**
     * Page {@code index} frozen, for a prefix block to keep: this cache and every cache that starts from
     * the block share it until one writes into it.
     */
    KvPage keepPage(int index) {
        cover((index + 1) * KvPage.POSITIONS);
        return pages.get(index).freeze();
    }

    /** Starts page {@code index} (every page before it held already) with a kept, frozen page. */
    void startFrom(int index, KvPage page) {
        if (index > pages.size()) {
            throw new IllegalArgumentException("page " + index + " of a cache holding " + pages.size() + " pages");
        }
        ensure((index + 1) * KvPage.POSITIONS);
        if (index == pages.size()) {
            pages.add(page);
        } else {
            pages.set(index, page);
        }
        keptAt = -1;
    }

    /** Whether page {@code index} is a kept page (shared, not this cache's own): for tests. */
    boolean shares(int index, KvPage page) {
        return pages.get(index) == page;
    }

    @Override
    public void setLength(int length) {
        if (length < 0 || length > capacity) {
            throw new IllegalArgumentException("cache length " + length + " outside [0, " + capacity + "]");
        }
        cover(length);
        this.length = length;
    }

    /** Bytes of cache storage per position (all layers). */
    public long bytesPerPosition() {
        return (long) layers * (rank + rope) * dtype.bytes();
    }
}
