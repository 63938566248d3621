package dev.epic.attention;

import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCache;
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
 * most {@code maxSequences} are held at once, in at most {@code kvCacheBytes} of cache arrays.
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
     * A segment's cache id, where it starts, how many positions it writes, and the positions the
     * coordinator reserves for the cache (0: none; the cache grows by doubling). All checked >= 0.
     */
    record Segment(long id, int start, int length, int reserve) {
        Segment(long id, int start, int length) {
            this(id, start, length, 0);
        }
    }

    private final AttentionLayers layers;
    private final int maxSequences;
    private final long kvCacheBytes;
    private final long bytesPerPosition;
    private final int maxPositions;
    private final Map<Long, HeapKvCache> caches = new HashMap<>(); // guarded by this
    private final Map<Long, Object> owners = new HashMap<>();  // guarded by this
    private long refused; // guarded by this: sequences refused for lack of room (counted per refusal)

    /**
     * A cache a message makes grow: it needs {@code need} positions, more than it holds, within
     * {@code max}; the coordinator reserved {@code reserve} (0: none).
     */
    private record Growth(long id, HeapKvCache cache, int need, int max, int reserve) {
        /** What it grows to when the budget allows: what was reserved (as counted by the coordinator), else doubled. */
        int wanted() {
            return reserve > 0 ? reserved(need, reserve, max) : HeapKvCache.grownCapacity(cache.capacity(), need, max);
        }

        int tight() {
            return HeapKvCache.tightCapacity(cache.capacity(), need, max);
        }
    }

    SequenceCaches(AttentionLayers layers, int maxSequences, long kvCacheBytes) {
        if (maxSequences < 1) {
            throw new IllegalArgumentException("max sequences must be >= 1, got " + maxSequences);
        }
        if (kvCacheBytes < 1) {
            throw new IllegalArgumentException("KV cache budget must be > 0, got " + kvCacheBytes);
        }
        this.layers = layers;
        this.maxSequences = maxSequences;
        this.kvCacheBytes = kvCacheBytes;
        this.bytesPerPosition = HeapKvCache.bytesPerPosition(layers.config());
        this.maxPositions = layers.config().maxPositionEmbeddings();
    }

    /**
     * The caches of one message's segments, in order, all or none: unknown ids are created for
     * {@code owner} when the segment starts at position 0 of layer 0; an unknown id anywhere else is
     * refused, and so is the whole message when there is no room for its new caches, or (layer 0,
     * where a step's caches grow) its caches would outgrow the KV budget: those are refused as
     * exhausted, the others run. A segment starting beyond what its cache holds, or ending beyond the
     * model's context, is malformed at any layer: IllegalArgumentException.
     */
    synchronized List<KvCache> acquire(Object owner, int layer, List<Segment> segments) {
        Map<Long, Integer> fresh = new LinkedHashMap<>(); // new caches and the positions they start with
        List<Growth> growing = new ArrayList<>();
        for (Segment s : segments) {
            if ((long) s.start() + s.length() > maxPositions) {
                throw new IllegalArgumentException("sequence cache " + s.id() + ": positions " + s.start() + " to "
                        + ((long) s.start() + s.length()) + " are beyond the model's " + maxPositions);
            }
            HeapKvCache c = caches.get(s.id());
            if (c == null) {
                if (layer != 0 || s.start() != 0) {
                    throw new Refused("sequence cache " + s.id() + " is not held here (released, its stream ended, or "
                            + "this worker restarted); it cannot continue at layer " + layer + " position " + s.start(),
                            false, List.of(s.id()));
                }
                int initial = HeapKvCache.initialCapacity(maxPositions);
                fresh.put(s.id(), s.reserve() > 0 ? Math.max(initial, reserved(s.length(), s.reserve(), maxPositions))
                        : HeapKvCache.grownCapacity(initial, s.length(), maxPositions));
            } else {
                // Checked at every layer: a later layer's attention reads and writes from start too.
                if (s.start() > c.length()) {
                    throw new IllegalArgumentException("sequence cache " + s.id() + " holds " + c.length()
                            + " positions; a step cannot start at " + s.start());
                }
                int need = s.start() + s.length();
                if (need > c.capacity()) {
                    growing.add(new Growth(s.id(), c, need, maxPositions, layer == 0 ? s.reserve() : 0));
                }
            }
        }
        if (caches.size() + fresh.size() > maxSequences) {
            refused += fresh.size();
            throw new Refused("attention worker holds " + caches.size() + " of its maximum of " + maxSequences
                    + " sequences: no room for " + fresh.size() + " more", true, List.copyOf(fresh.keySet()));
        }
        long freshBytes = 0;
        for (int positions : fresh.values()) {
            freshBytes += bytes(positions);
        }
        // Growing caches take what the coordinator reserved, or double; when that does not fit in the budget they
        // grow by what they need and up to HeapKvCache.TIGHT_GROWTH more, or, at the end of the budget,
        // by what they need and a share of what is left. The budget is checked where caches grow: at
        // layer 0. A step that takes no more memory always runs (even over a budget set lower than what
        // is held).
        ToIntFunction<Growth> size = Growth::wanted;
        long more = freshBytes + bytes(growing, size);
        long held = layer == 0 ? heldBytes() : 0;
        if (layer == 0 && more > 0 && held + more > kvCacheBytes) {
            long exact = bytes(growing, Growth::need);
            if (held + freshBytes + bytes(growing, Growth::tight) <= kvCacheBytes) {
                size = Growth::tight;
            } else if (held + freshBytes + exact <= kvCacheBytes) {
                long spare = (kvCacheBytes - held - freshBytes - exact) / bytesPerPosition / growing.size();
                size = g -> (int) Math.min(g.tight(), g.need() + spare);
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
            HeapKvCache c = layers.newCache();
            c.reserve(positions);
            caches.put(id, c);
        });
        List<KvCache> out = new ArrayList<>(segments.size());
        for (Segment s : segments) {
            out.add(caches.get(s.id()));
            owners.put(s.id(), owner); // a cache moves to the stream that uses it (a coordinator's reopened stream)
        }
        return out;
    }

    /** Positions a cache holds for a step needing {@code need} when the coordinator reserved {@code reserve}. */
    private static int reserved(int need, int reserve, int max) {
        return Math.min(max, Math.max(need, reserve));
    }

    /** Bytes the growing caches take beyond what they hold, each grown to {@code size}. */
    private long bytes(List<Growth> growing, ToIntFunction<Growth> size) {
        long n = 0;
        for (Growth g : growing) {
            n += bytes(size.applyAsInt(g)) - bytes(g.cache().capacity());
        }
        return n;
    }

    private long bytes(int positions) {
        return positions * bytesPerPosition;
    }

    private static String mib(long bytes) {
        return bytes < 1 << 20 ? String.format("%.1f KiB", bytes / 1024.0) : String.format("%.1f MiB", bytes / 1048576.0);
    }

    /** Bytes the caches' arrays take now. */
    synchronized long heldBytes() {
        long n = 0;
        for (HeapKvCache c : caches.values()) {
            n += bytes(c.capacity());
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
    }

    /** The stream {@code owner} ended: its caches go with it. Returns how many. */
    synchronized int releaseAll(Object owner) {
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
