package dev.epic.model;

/**
 * {@link #POSITIONS} consecutive positions of a KV cache, every layer: the unit a {@link HeapKvCache}
 * holds its memory in and prefix caching shares. Each layer's latents are [POSITIONS x rank] and its
 * rotated keys [POSITIONS x rope], fp32 or bf16 bits ({@link KvCacheDtype}).
 *
 * <p>A page kept by prefix caching is {@link #freeze() frozen}: it never changes again, so every cache
 * that starts from it holds the page itself instead of a copy (vLLM's shared blocks). A cache about to
 * write into a frozen page writes into a copy of it instead (copy on write), so what one sequence
 * writes is never seen by another.
 */
public final class KvPage {
    /** Positions per page: prefix caching's block, so a kept block is one page. */
    public static final int POSITIONS = 16;

    final int positions; // POSITIONS, but for a prefix block of another size (a copy, never a cache's page)
    final float[][] latent; // [layer][positions x rank], FP32; null for BF16
    final float[][] kPe;    // [layer][POSITIONS x rope]
    final short[][] latent16; // the same, BF16 bits
    final short[][] kPe16;
    private volatile boolean frozen;
    private final java.util.concurrent.atomic.AtomicInteger keptBy = new java.util.concurrent.atomic.AtomicInteger();

    KvPage(int layers, int rank, int rope, KvCacheDtype dtype) {
        this(POSITIONS, layers, rank, rope, dtype);
    }

    KvPage(int positions, int layers, int rank, int rope, KvCacheDtype dtype) {
        boolean bf16 = dtype == KvCacheDtype.BF16;
        this.positions = positions;
        this.latent = bf16 ? null : new float[layers][positions * rank];
        this.kPe = bf16 ? null : new float[layers][positions * rope];
        this.latent16 = bf16 ? new short[layers][positions * rank] : null;
        this.kPe16 = bf16 ? new short[layers][positions * rope] : null;
    }

    private KvPage(KvPage of) {
        this.positions = of.positions;
        this.latent = of.latent == null ? null : deep(of.latent);
        this.kPe = of.kPe == null ? null : deep(of.kPe);
        this.latent16 = of.latent16 == null ? null : deep(of.latent16);
        this.kPe16 = of.kPe16 == null ? null : deep(of.kPe16);
    }

    private static float[][] deep(float[][] a) {
        float[][] c = new float[a.length][];
        for (int i = 0; i < a.length; i++) {
            c[i] = a[i].clone();
        }
        return c;
    }

    private static short[][] deep(short[][] a) {
        short[][] c = new short[a.length][];
        for (int i = 0; i < a.length; i++) {
            c[i] = a[i].clone();
        }
        return c;
    }

    /** A writable copy (what a cache writes into instead of a frozen page). */
    KvPage copy() {
        return new KvPage(this);
    }

    /** Makes the page read-only from now on and returns it: what a kept prefix block holds. */
    KvPage freeze() {
        frozen = true;
        return this;
    }

    boolean frozen() {
        return frozen;
    }

    /** Changes to any page's kept state so far: a cache's count of its kept pages holds until this moves. */
    private static final java.util.concurrent.atomic.AtomicLong KEPT_CHANGES = new java.util.concurrent.atomic.AtomicLong();

    /** A kept block holds it now, or lets it go: while one does, the prefix cache's budget counts it. */
    void kept(boolean by) {
        keptBy.addAndGet(by ? 1 : -1);
        KEPT_CHANGES.incrementAndGet();
    }

    static long keptChanges() {
        return KEPT_CHANGES.get();
    }

    /** Whether a kept block holds it: its memory is counted by the prefix cache's budget, not by a KV budget. */
    boolean kept() {
        return keptBy.get() > 0;
    }

    public KvCacheDtype dtype() {
        return latent != null ? KvCacheDtype.FP32 : KvCacheDtype.BF16;
    }

    public int layers() {
        return latent != null ? latent.length : latent16.length;
    }
}
