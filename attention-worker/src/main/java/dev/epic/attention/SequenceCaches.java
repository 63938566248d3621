package dev.epic.attention;

import dev.epic.model.HeapKvCache;
import dev.epic.model.KvBlock;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvCache;
import dev.epic.model.KvPage;
import dev.epic.model.attention.AttentionLayers;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.ToIntFunction;

/**
 * The latent KV caches of the sequences placed on this worker, by the coordinator's cache id. A
 * cache is created by its first segment (layer 0, position 0) and belongs to the Attend stream that
 * created it: it goes when the coordinator releases it or when that stream ends (the coordinator
 * then presumes it lost, so nothing is left behind by a coordinator that failed or restarted). At
 * most {@code maxSequences} are held at once, in at most {@code kvCacheBytes} of cache pages (pages
 * shared with kept prefix blocks are counted by the prefix budget instead).
 *
 * <p>Prefix caching: a stream may have positions of its caches kept as blocks (at most
 * {@code prefixCacheBytes} per stream, apart from the KV budget) and start new caches from them. The
 * coordinator decides which blocks to keep, drop and start from; they go with the stream.
 */
final class SequenceCaches {
    /** Why a message's caches cannot be used; nothing was created or changed. */
    static final class Refused extends RuntimeException {
        final boolean exhausted;
        final List<Long> ids;

        Refused(String message, boolean exhausted, List<Long> ids) {
            super(message, null, false, false);
            this.exhausted = exhausted;
            this.ids = ids;
        }
    }

    /**
     * A segment's cache id, where it starts, how many positions it writes, the positions the
     * coordinator reserves for the cache (0: none; the cache grows a page at a time), and for a new cache
     * the layers it holds (0: the decoder's; one more: the MTP layer's too). All checked >= 0.
     */
    record Segment(long id, int start, int length, int reserve, List<Long> prefixBlocks, int cacheLayers) {
        Segment(long id, int start, int length, int reserve, List<Long> prefixBlocks) {
            this(id, start, length, reserve, prefixBlocks, 0);
        }

        Segment(long id, int start, int length, int reserve) {
            this(id, start, length, reserve, List.of());
        }

        Segment(long id, int start, int length) {
            this(id, start, length, 0);
        }
    }

    private final AttentionLayers layers;
    private final int maxSequences;
    private final long kvCacheBytes;
    private final KvCacheDtype dtype;
    private final int maxPositions;
    private final Map<Long, HeapKvCache> caches = new HashMap<>(); // guarded by this
    private final Map<Long, Object> owners = new HashMap<>();  // guarded by this
    /**
     * Caches that hold the MTP layer: where its positions written so far end. The coordinator writes
     * them as it drafts, apart from the decoder's (its chained drafts run ahead of the cache's length).
     */
    private final Map<Long, Integer> mtpEnds = new HashMap<>(); // guarded by this
    private final long prefixCacheBytes;
    /** Kept prefix blocks by stream, then by the coordinator's block id. */
    private final Map<Object, Map<Long, KvBlock>> blocks = new HashMap<>(); // guarded by this
    private long refused; // guarded by this: sequences refused for lack of room (counted per refusal)

    /**
     * A cache a message makes grow: it needs {@code need} positions, more than it holds, within
     * {@code max}; the coordinator reserved {@code reserve} (0: none).
     */
    private record Growth(long id, HeapKvCache cache, int need, int max, int reserve, boolean mtp) {
        /**
         * What it grows to when the budget allows: what was reserved (as counted by the coordinator), else
         * the page that holds what it needs; at the MTP layer (whose chained drafts the coordinator reserves
         * with its step, so this is only for one that did not), exactly what it needs: nothing there is
         * counted by the budget.
         */
        int wanted() {
            return mtp ? need : reserve > 0 ? reserved(need, reserve, max) : paged();
        }

        /** What it needs, to the page that holds it: what it grows to when a reservation does not fit. */
        int paged() {
            return HeapKvCache.grownCapacity(cache.capacity(), need, max);
        }
    }

    SequenceCaches(AttentionLayers layers, int maxSequences, long kvCacheBytes) {
        this(layers, maxSequences, kvCacheBytes, 0, KvCacheDtype.FP32);
    }

    /**
     * @param prefixCacheBytes bytes of prefix blocks one stream may keep (0: none)
     * @param dtype            how the caches store positions
     */
    SequenceCaches(AttentionLayers layers, int maxSequences, long kvCacheBytes, long prefixCacheBytes,
            KvCacheDtype dtype) {
        if (maxSequences < 1) {
            throw new IllegalArgumentException("max sequences must be >= 1, got " + maxSequences);
        }
        if (kvCacheBytes < 1) {
            throw new IllegalArgumentException("KV cache budget must be > 0, got " + kvCacheBytes);
        }
        this.layers = layers;
        this.maxSequences = maxSequences;
        this.kvCacheBytes = kvCacheBytes;
        this.dtype = dtype;
        this.maxPositions = layers.config().maxPositionEmbeddings();
        if (prefixCacheBytes < 0) {
            throw new IllegalArgumentException("prefix cache budget must be >= 0, got " + prefixCacheBytes);
        }
        this.prefixCacheBytes = prefixCacheBytes;
    }

    /**
     * Keeps positions [start, start + blockPositions * ids.size()) of the cache {@code id} of {@code owner}'s
     * stream as blocks named {@code ids}. IllegalArgumentException when the cache is not the stream's,
     * does not hold those positions, an id is taken, or the stream's blocks would outgrow the budget.
     */
    synchronized void keep(Object owner, long id, int start, int blockPositions, List<Long> ids) {
        HeapKvCache c = caches.get(id);
        if (c == null || owners.get(id) != owner) {
            throw new IllegalArgumentException("prefix blocks of sequence cache " + id + ": not held for this stream");
        }
        Integer mtpEnd = mtpEnds.get(id);
        int end = start + blockPositions * ids.size();
        if (mtpEnd != null && end > mtpEnd) { // the coordinator keeps what its MTP layer has taken too
            throw new IllegalArgumentException("prefix blocks of sequence cache " + id + " up to position " + end
                    + ": its MTP layer holds " + mtpEnd);
        }
        Map<Long, KvBlock> mine = blocks.computeIfAbsent(owner, o -> new HashMap<>());
        var config = layers.config();
        long more = ids.size() * KvBlock.bytes(c.layers(), blockPositions, config.kvLoraRank(), config.qkRopeHeadDim(),
                dtype);
        if (blockBytes(mine) + more > prefixCacheBytes) {
            throw new IllegalArgumentException("keeping " + ids.size() + " more prefix blocks would take "
                    + mib(blockBytes(mine) + more) + ", beyond this worker's " + mib(prefixCacheBytes) + " (--prefix-cache-mb)");
        }
        KvBlock[] copied = KvBlock.copy(c, c.layers(), config.kvLoraRank(), config.qkRopeHeadDim(), start,
                blockPositions, ids.size());
        for (int b = 0; b < copied.length; b++) {
            if (mine.putIfAbsent(ids.get(b), copied[b]) != null) {
                for (int rest = b; rest < copied.length; rest++) {
                    copied[rest].release();
                }
                throw new IllegalArgumentException("prefix block " + ids.get(b) + " is kept already");
            }
        }
    }

    /** Drops {@code owner}'s blocks {@code ids} (unknown ones are ignored). */
    synchronized void drop(Object owner, List<Long> ids) {
        Map<Long, KvBlock> mine = blocks.get(owner);
        if (mine != null) {
            for (long id : ids) {
                KvBlock b = mine.remove(id);
                if (b != null) {
                    b.release();
                }
            }
        }
    }

    private static long blockBytes(Map<Long, KvBlock> blocks) {
        long n = 0;
        for (KvBlock b : blocks.values()) {
            n += b.bytes();
        }
        return n;
    }

    /** Bytes of prefix blocks kept now, all streams. */
    synchronized long prefixBytes() {
        long n = 0;
        for (Map<Long, KvBlock> m : blocks.values()) {
            n += blockBytes(m);
        }
        return n;
    }

    /** {@code owner}'s blocks for a new cache's segment, checked to hold positions [0, start); null if the segment names none. */
    private List<KvBlock> prefix(Object owner, Segment s) {
        if (s.prefixBlocks().isEmpty()) {
            return null;
        }
        Map<Long, KvBlock> mine = blocks.getOrDefault(owner, Map.of());
        List<KvBlock> found = new ArrayList<>(s.prefixBlocks().size());
        long positions = 0;
        for (long b : s.prefixBlocks()) {
            KvBlock block = mine.get(b);
            if (block == null) {
                throw new Refused("prefix block " + b + " for sequence cache " + s.id() + " is not kept here", false,
                        List.of(s.id()));
            }
            found.add(block);
            positions += block.positions();
        }
        if (positions != s.start()) {
            throw new IllegalArgumentException("sequence cache " + s.id() + " starts at " + s.start() + " from prefix blocks of "
                    + positions + " positions");
        }
        int want = cacheLayers(s);
        for (KvBlock b : found) {
            if (b.layers() != want) {
                throw new IllegalArgumentException("sequence cache " + s.id() + " of " + want + " layers cannot start from "
                        + "a prefix block of " + b.layers());
            }
        }
        return found;
    }

    /**
     * The caches of one message's segments, in order, all or none: unknown ids are created for
     * {@code owner} when the segment starts at position 0 of layer 0 (or where its prefix blocks end);
     * an unknown id anywhere else is refused, and so is the whole message when there is no room for
     * its new caches, or (layer 0, where a step's caches grow) its caches would outgrow the KV budget:
     * those are refused as exhausted, the others run. A segment starting beyond what its cache holds,
     * or ending beyond the model's context, is malformed at any layer: IllegalArgumentException. The
     * MTP layer ({@code layer == layers.count()}) takes only caches made with it, from at most where
     * its last segment there ended.
     */
    synchronized List<KvCache> acquire(Object owner, int layer, List<Segment> segments) {
        boolean mtpLayer = layer == layers.count();
        Map<Long, Integer> fresh = new LinkedHashMap<>(); // new caches and the positions they start with
        Map<Long, Integer> freshLayers = new HashMap<>();
        Map<Long, List<KvBlock>> restored = new HashMap<>(); // new caches' prefix blocks
        List<Growth> growing = new ArrayList<>();
        for (Segment s : segments) {
            if ((long) s.start() + s.length() > maxPositions) {
                throw new IllegalArgumentException("sequence cache " + s.id() + ": positions " + s.start() + " to "
                        + ((long) s.start() + s.length()) + " are beyond the model's " + maxPositions);
            }
            HeapKvCache c = caches.get(s.id());
            if (c == null) {
                if (layer != 0) {
                    throw notHeld(s, layer);
                }
                int cacheLayers = cacheLayers(s);
                String refusal = layers.cacheLayersRefusal(cacheLayers);
                if (refusal != null) {
                    throw new IllegalArgumentException("sequence cache " + s.id() + ": " + refusal);
                }
                List<KvBlock> prefix = prefix(owner, s);
                if (s.start() != 0 && prefix == null) {
                    throw notHeld(s, layer);
                }
                if (prefix != null) {
                    restored.put(s.id(), prefix);
                }
                int initial = HeapKvCache.initialCapacity(maxPositions);
                int need = s.start() + s.length();
                fresh.put(s.id(), s.reserve() > 0 ? Math.max(initial, reserved(need, s.reserve(), maxPositions))
                        : HeapKvCache.grownCapacity(initial, need, maxPositions));
                freshLayers.put(s.id(), cacheLayers);
            } else {
                // Checked at every layer: a later layer's attention reads and writes from start too.
                int held = c.length();
                if (mtpLayer) {
                    Integer end = mtpEnds.get(s.id());
                    if (end == null) {
                        throw new IllegalArgumentException("sequence cache " + s.id() + " was made without the MTP layer");
                    }
                    held = end;
                }
                if (s.start() > held) {
                    throw new IllegalArgumentException("sequence cache " + s.id() + " holds " + held
                            + (mtpLayer ? " positions of its MTP layer" : " positions") + "; a step cannot start at "
                            + s.start());
                }
                int need = s.start() + s.length();
                if (need > c.capacity()) {
                    growing.add(new Growth(s.id(), c, need, maxPositions, layer == 0 ? s.reserve() : 0, mtpLayer));
                }
            }
        }
        if (caches.size() + fresh.size() > maxSequences) {
            refused += fresh.size();
            throw new Refused("attention worker holds " + caches.size() + " of its maximum of " + maxSequences
                    + " sequences: no room for " + fresh.size() + " more", true, List.copyOf(fresh.keySet()));
        }
        long freshBytes = 0;
        for (var f : fresh.entrySet()) { // less the kept pages a new cache starts from: the prefix budget's
            freshBytes += bytes(f.getValue() - sharedPages(restored.get(f.getKey()), freshLayers.get(f.getKey())),
                    freshLayers.get(f.getKey()));
        }
        // Growing caches take what the coordinator reserved, or the page their positions need; when that does not
        // fit in the budget they grow to the page they need, or, at the end of the budget, by what they need and a
        // share of what is left. The budget is checked where caches grow: at
        // layer 0. A step that takes no more memory always runs (even over a budget set lower than what
        // is held).
        ToIntFunction<Growth> size = Growth::wanted;
        long more = freshBytes + bytes(growing, size);
        long held = layer == 0 ? heldBytes() : 0;
        if (layer == 0 && more > 0 && held + more > kvCacheBytes) {
            long exact = bytes(growing, Growth::need);
            if (held + freshBytes + bytes(growing, Growth::paged) <= kvCacheBytes) {
                size = Growth::paged;
            } else if (held + freshBytes + exact <= kvCacheBytes) {
                long perPosition = 0;
                for (Growth g : growing) {
                    perPosition += g.cache().bytesPerPosition();
                }
                long spare = (kvCacheBytes - held - freshBytes - exact) / perPosition;
                size = g -> (int) Math.min(g.paged(), g.need() + spare);
            } else {
                // New sequences go first (the coordinator places them elsewhere); sequences already here
                // are refused only when their own growth does not fit (the coordinator then preempts).
                List<Long> refused = new ArrayList<>(fresh.keySet());
                if (held + exact > kvCacheBytes) {
                    growing.forEach(g -> refused.add(g.id()));
                }
                this.refused += refused.size();
                throw new Refused("attention worker KV caches hold " + mib(held) + " of their " + mib(kvCacheBytes)
                        + " (--kv-cache-mb): no room for " + mib(freshBytes + exact) + " more", true, refused);
            }
        }
        // Reserved before the writes, as counted: written one position at a time, a cache would double
        // again and again past it (16 -> 128 for a chunk to position 104).
        for (Growth g : growing) {
            g.cache().reserve(size.applyAsInt(g));
        }
        fresh.forEach((id, positions) -> {
            HeapKvCache c = layers.newCache(dtype, freshLayers.get(id));
            c.reserve(positions);
            List<KvBlock> prefix = restored.get(id);
            int pos = 0;
            if (prefix != null) { // the kept prefix's positions, as the sequence would have computed them
                for (KvBlock b : prefix) {
                    b.writeTo(c, pos);
                    pos += b.positions();
                }
                c.setLength(pos);
            }
            caches.put(id, c);
            if (c.layers() > layers.count()) {
                mtpEnds.put(id, pos); // the blocks hold the MTP layer too
            }
        });
        List<KvCache> out = new ArrayList<>(segments.size());
        for (Segment s : segments) {
            out.add(caches.get(s.id()));
            owners.put(s.id(), owner); // a cache moves to the stream that uses it (a coordinator's reopened stream)
        }
        return out;
    }

    private static Refused notHeld(Segment s, int layer) {
        return new Refused("sequence cache " + s.id() + " is not held here (released, its stream ended, or "
                + "this worker restarted); it cannot continue at layer " + layer + " position " + s.start(),
                false, List.of(s.id()));
    }

    /** The layers a new cache holds: the segment's, or (0) the decoder's. */
    private int cacheLayers(Segment s) {
        return s.cacheLayers() == 0 ? layers.count() : s.cacheLayers();
    }

    /** After the MTP layer wrote {@code s}'s positions of its cache: the next segment there may start where they end. */
    synchronized void wroteMtpLayer(long id, int end) {
        mtpEnds.computeIfPresent(id, (k, v) -> end);
    }

    /** Positions a cache holds for a step needing {@code need} when the coordinator reserved {@code reserve}. */
    private static int reserved(int need, int reserve, int max) {
        return Math.min(max, Math.max(need, reserve));
    }

    /** Bytes the growing caches take beyond what they hold, each grown to {@code size}. */
    private long bytes(List<Growth> growing, ToIntFunction<Growth> size) {
        long n = 0;
        for (Growth g : growing) {
            n += (size.applyAsInt(g) - (long) g.cache().capacity()) * g.cache().bytesPerPosition();
        }
        return n;
    }

    private long bytes(int positions, int cacheLayers) {
        return positions * dtype.bytesPerPosition(layers.config(), cacheLayers);
    }


    private static String mib(long bytes) {
        return bytes < 1 << 20 ? String.format("%.1f KiB", bytes / 1024.0) : String.format("%.1f MiB", bytes / 1048576.0);
    }

    /**
     * Positions of a new cache that its prefix blocks' pages will hold ({@link KvBlock#writeTo} shares a
     * block of one page of the cache's layers; its leading run of them counts, as {@link
     * HeapKvCache#keptPositions()} does).
     */
    private static int sharedPages(List<KvBlock> prefix, int cacheLayers) {
        int n = 0;
        if (prefix != null) {
            for (KvBlock b : prefix) {
                if (b.positions() != KvPage.POSITIONS || b.layers() != cacheLayers) {
                    break;
                }
                n += b.positions();
            }
        }
        return n;
    }

    /**
     * Bytes of KV budget the caches take now: their pages, less those kept prefix blocks hold (the prefix
     * budget counts them; a page whose blocks were all dropped counts again in each cache sharing it).
     */
    synchronized long heldBytes() {
        long n = 0;
        for (HeapKvCache c : caches.values()) {
            n += (long) (c.capacity() - c.keptPositions()) * c.bytesPerPosition();
        }
        return n;
    }

    long kvCacheBytes() {
        return kvCacheBytes;
    }

    /** Sequences refused for lack of room since start, once per refusal (a coordinator retries elsewhere or preempts). */
    synchronized long refusedSequences() {
        return refused;
    }

    synchronized void release(long id) {
        caches.remove(id);
        owners.remove(id);
        mtpEnds.remove(id);
    }

    /** The stream {@code owner} ended: its caches and prefix blocks go with it. Returns how many caches. */
    synchronized int releaseAll(Object owner) {
        Map<Long, KvBlock> mine = blocks.remove(owner);
        if (mine != null) {
            mine.values().forEach(KvBlock::release);
        }
        Set<Long> ids = new HashSet<>();
        owners.forEach((id, o) -> {
            if (o == owner) {
                ids.add(id);
            }
        });
        ids.forEach(this::release);
        return ids.size();
    }

    synchronized int size() {
        return caches.size();
    }

    int maxSequences() {
        return maxSequences;
    }

    synchronized long positions() {
        long n = 0;
        for (KvCache c : caches.values()) {
            n += c.length();
        }
        return n;
    }
}
