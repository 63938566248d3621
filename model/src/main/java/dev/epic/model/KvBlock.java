package dev.epic.model;

/**
 * Some consecutive positions of a sequence's KV cache, every layer: what prefix
 * caching keeps of a prompt. A position's latent and rotated key depend only on the tokens up to it, so
 * a block kept from one sequence is exactly what another with the same leading tokens would compute.
 * It holds the values as its cache stored them (fp32, or bf16 bits), and goes back into caches of that
 * {@link KvCacheDtype}.
 *
 * <p>A block of {@link KvPage#POSITIONS} positions of a {@link HeapKvCache} is the cache's page itself,
 * frozen: keeping it copies nothing, and every cache started from it shares it until it writes there
 * ({@link KvPage}). Blocks of other sizes, or of other caches, are copies.
 */
public final class KvBlock {
    private final KvPage page;
    private final int rank;
    private final int rope;
    private final java.util.concurrent.atomic.AtomicBoolean released = new java.util.concurrent.atomic.AtomicBoolean();

    KvBlock(KvPage page, int rank, int rope) {
        this.page = page;
        this.rank = rank;
        this.rope = rope;
        page.kept(true);
    }

    /**
     * The block is dropped from its prefix cache: its page is no longer counted there, so the caches still
     * sharing it count it again ({@link KvCache#keptPositions()}).
     */
    public void release() {
        if (released.compareAndSet(false, true)) {
            page.kept(false);
        }
    }

    /** Bytes a block of {@code positions} positions takes for a model of {@code layers} layers. */
    public static long bytes(int layers, int positions, int rank, int rope, KvCacheDtype dtype) {
        return (long) layers * positions * (rank + rope) * dtype.bytes();
    }

    /**
     * Keeps positions [start + b * positions, start + (b + 1) * positions) of {@code cache} as block b,
     * for b in [0, count): the cache's own pages where they are pages (a {@link HeapKvCache} of
     * {@code layers} layers, blocks of {@link KvPage#POSITIONS} from a page's start), else copies.
     */
    public static KvBlock[] copy(KvCache cache, int layers, int rank, int rope, int start, int positions, int count) {
        int end = start + positions * count;
        if (start < 0 || positions <= 0 || count < 0 || end > cache.length()) {
            throw new IllegalArgumentException("positions " + start + " to " + end + " of a cache holding "
                    + cache.length() + " cannot be kept (blocks of " + positions + ")");
        }
        KvBlock[] blocks = new KvBlock[count];
        if (cache instanceof HeapKvCache h && h.layers() == layers && positions == KvPage.POSITIONS
                && start % KvPage.POSITIONS == 0) {
            for (int b = 0; b < count; b++) {
                blocks[b] = new KvBlock(h.keepPage(start / KvPage.POSITIONS + b), rank, rope);
            }
            return blocks;
        }
        for (int b = 0; b < count; b++) {
            blocks[b] = new KvBlock(new KvPage(positions, layers, rank, rope, cache.dtype()), rank, rope);
        }
        for (int layer = 0; layer < layers; layer++) {
            if (cache.dtype() == KvCacheDtype.BF16) {
                short[] lat = cache.latentsBf16(layer, end, rank, rope);
                short[] pe = cache.ropeKeysBf16(layer, end, rank, rope);
                for (int b = 0; b < count; b++) {
                    int p0 = start + b * positions;
                    System.arraycopy(lat, p0 * rank, blocks[b].page.latent16[layer], 0, positions * rank);
                    System.arraycopy(pe, p0 * rope, blocks[b].page.kPe16[layer], 0, positions * rope);
                }
            } else {
                float[] lat = cache.latents(layer, end, rank, rope);
                float[] pe = cache.ropeKeys(layer, end, rank, rope);
                for (int b = 0; b < count; b++) {
                    int p0 = start + b * positions;
                    System.arraycopy(lat, p0 * rank, blocks[b].page.latent[layer], 0, positions * rank);
                    System.arraycopy(pe, p0 * rope, blocks[b].page.kPe[layer], 0, positions * rope);
                }
            }
        }
        for (KvBlock b : blocks) {
            b.page.freeze();
        }
        return blocks;
    }

    /**
     * Starts {@code cache} (of the block's dtype) at positions [pos, pos + positions) with this block,
     * every layer: a {@link HeapKvCache} of the block's layers shares a block of one page that starts
     * on a page; other caches (and blocks) are written.
     */
    public void writeTo(KvCache cache, int pos) {
        if (cache.dtype() != dtype()) {
            throw new IllegalArgumentException("a block of a " + dtype().id() + " KV cache cannot go into a "
                    + cache.dtype().id() + " one");
        }
        if (cache instanceof HeapKvCache h && h.layers() == layers() && page.positions == KvPage.POSITIONS
                && pos % KvPage.POSITIONS == 0) {
            h.startFrom(pos / KvPage.POSITIONS, page);
            return;
        }
        for (int layer = 0; layer < layers(); layer++) {
            for (int p = 0; p < page.positions; p++) {
                if (page.latent != null) {
                    cache.write(layer, pos + p, page.latent[layer], p * rank, page.kPe[layer], p * rope);
                } else {
                    cache.writeBf16(layer, pos + p, page.latent16[layer], p * rank, page.kPe16[layer], p * rope);
                }
            }
        }
    }

    public int positions() {
        return page.positions;
    }

    public KvCacheDtype dtype() {
        return page.dtype();
    }

    public long bytes() {
        return bytes(layers(), page.positions, rank, rope, dtype());
    }

    /** Layers it holds: its cache's (the decoder's, and the MTP layer's when that sequence drafted with it). */
    public int layers() {
        return page.layers();
    }

    int rank() {
        return rank;
    }

    int rope() {
        return rope;
    }

    /** The page it holds: shared with the caches it was kept from or started. */
    KvPage page() {
        return page;
    }
}
