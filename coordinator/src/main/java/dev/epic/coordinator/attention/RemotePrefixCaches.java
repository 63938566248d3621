package dev.epic.coordinator.attention;

import dev.epic.coordinator.scheduler.PrefixCache;
import dev.epic.model.KvBlock;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvCache;
import dev.epic.model.PrefixStore;
import dev.epic.model.config.ModelConfig;
import dev.epic.proto.PrefixKeep;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Prefix caching with data-parallel attention: the kept blocks live on the attention workers, next to
 * the caches they are copied from and into, and this coordinator holds one {@link PrefixCache} index
 * per worker (which prompt prefix each block holds) within that worker's announced prefix budget and
 * its own. A joining sequence is placed on the worker with the longest kept prefix of its prompt and
 * starts from those blocks (SGLang's cache-aware routing with DP attention); a prefilled prompt's
 * blocks are kept on the worker that computed them. The worker is told on the next Attend message
 * (blocks to keep, to drop, and a new cache's blocks with its first segment), in order with the
 * steps. A worker's failure ends its stream and its blocks; its index starts again empty.
 *
 * <p>Used from the engine thread; the counters may be read from any thread.
 */
final class RemotePrefixCaches implements PrefixStore {
    private final AttentionDirectory directory;
    private final long bytes;
    private final long blockBytes;
    private final long bytesPerPosition;
    private final AtomicLong queried = new AtomicLong();
    private final AtomicLong hits = new AtomicLong();
    /** Block ids: unique per coordinator, never reused. */
    private long nextBlock;
    private final Map<AttentionEndpoint, Index> indexes = new ConcurrentHashMap<>(); // written by the engine thread

    /** One worker's index, for one epoch of its stream. */
    private record Index(long epoch, PrefixCache cache) {}

    /** @param cacheLayers layers a cache holds, and so its blocks: the decoder's, and the MTP layer's when drafting */
    RemotePrefixCaches(AttentionDirectory directory, ModelConfig config, int cacheLayers, KvCacheDtype dtype, long bytes) {
        this.directory = directory;
        this.bytes = bytes;
        this.blockBytes = KvBlock.bytes(cacheLayers, PrefixCache.BLOCK, config.kvLoraRank(),
                config.qkRopeHeadDim(), dtype);
        this.bytesPerPosition = dtype.bytesPerPosition(config, cacheLayers);
    }

    /** The worker's index for its current epoch (a new, empty one after a failure); null if it keeps no prefixes. */
    private PrefixCache index(AttentionEndpoint w) {
        long budget = Math.min(bytes, w.prefixCacheBytes());
        if (budget < blockBytes) {
            return null;
        }
        long epoch = w.epoch();
        Index i = indexes.get(w);
        if (i == null || i.epoch() != epoch) {
            i = new Index(epoch, new PrefixCache(budget, blockBytes, new WorkerBlocks(w, epoch)));
            indexes.put(w, i);
        }
        return i.cache();
    }

    /**
     * Places the new {@code cache} on the worker with the longest kept prefix of {@code prompt} among
     * those with room for what it reserves beside the pages it would share there (by this coordinator's
     * count), and starts it from those blocks. When none has one, the cache is left for placement at its
     * first step and starts empty.
     */
    @Override
    public int restore(int[] prompt, KvCache cache) {
        queried.addAndGet(prompt.length);
        RemoteCache c = (RemoteCache) cache;
        AttentionEndpoint best = c.endpoint == null ? longestMatch(prompt, c.capacity()) : null;
        if (best == null || !best.place(c)) {
            cache.setLength(0);
            return 0;
        }
        int tokens = index(best).restore(prompt, cache);
        hits.addAndGet(tokens);
        return tokens;
    }

    /**
     * Tokens of {@code prompt} a cache reserving {@code positions} would start from (restore's choice):
     * what the scheduler counts as shared when it joins.
     */
    @Override
    public int matchedTokens(int[] prompt, int positions) {
        AttentionEndpoint best = longestMatch(prompt, positions);
        return best == null ? 0 : index(best).matchedTokens(prompt);
    }

    /**
     * The worker with the longest kept prefix of {@code prompt} among those that may take a cache of
     * {@code positions}, less that prefix (its pages are shared there); null when none keeps any.
     */
    private AttentionEndpoint longestMatch(int[] prompt, int positions) {
        indexes.keySet().retainAll(directory.workers()); // workers that left
        long now = System.nanoTime();
        AttentionEndpoint best = null;
        int longest = 0;
        for (AttentionEndpoint w : directory.workers()) {
            PrefixCache index = w.hasRoom(now) ? index(w) : null;
            int n = index == null ? 0 : index.matchedTokens(prompt);
            if (n > longest && w.roomBytes(bytesPerPosition) >= (long) (positions - n) * bytesPerPosition) {
                best = w;
                longest = n;
            }
        }
        return best;
    }

    /** Keeps the prompt's whole blocks on the worker that holds {@code cache}, if it keeps prefixes. */
    @Override
    public void store(int[] prompt, KvCache cache) {
        RemoteCache c = (RemoteCache) cache;
        AttentionEndpoint w = c.endpoint;
        if (w == null || !w.holds(c)) {
            return;
        }
        PrefixCache index = index(w);
        if (index != null) {
            index.store(prompt, cache);
        }
    }

    @Override
    public boolean canHold(int promptTokens) {
        return directory.workers().stream().map(this::index).anyMatch(i -> i != null && i.canHold(promptTokens));
    }

    @Override
    public long queriedTokens() {
        return queried.get();
    }

    @Override
    public long hitTokens() {
        return hits.get();
    }

    /** Bytes kept on the workers for this coordinator, as its indexes count them. */
    @Override
    public long storedBytes() {
        long n = 0;
        for (Index i : indexes.values()) {
            n += i.cache().storedBytes();
        }
        return n;
    }

    /**
     * Blocks kept on one worker for one epoch of its stream, named by ids. The caches they were kept from
     * or started are told, so that they count the pages they share with them once.
     */
    private final class WorkerBlocks implements PrefixCache.Blocks {
        private final AttentionEndpoint worker;
        private final long epoch;
        /** Ids kept and not dropped: read by caches from any thread. */
        private final java.util.Set<Long> kept = ConcurrentHashMap.newKeySet();

        WorkerBlocks(AttentionEndpoint worker, long epoch) {
            this.worker = worker;
            this.epoch = epoch;
        }

        @Override
        public Object[] keep(KvCache cache, int start, int count) {
            Long[] ids = new Long[count];
            long[] named = new long[count];
            RemoteCache c = (RemoteCache) cache;
            PrefixKeep.Builder keep = PrefixKeep.newBuilder().setCacheId(c.id).setStart(start)
                    .setBlockPositions(PrefixCache.BLOCK);
            for (int b = 0; b < count; b++) {
                ids[b] = ++nextBlock;
                named[b] = ids[b];
                keep.addBlockIds(ids[b]);
                kept.add(ids[b]);
            }
            worker.keep(epoch, keep.build());
            c.shares(worker, epoch, start, PrefixCache.BLOCK, named, kept::contains);
            return ids;
        }

        @Override
        public void restore(List<Object> blocks, KvCache cache) {
            long[] ids = new long[blocks.size()];
            for (int b = 0; b < ids.length; b++) {
                ids[b] = (Long) blocks.get(b);
            }
            RemoteCache c = (RemoteCache) cache;
            c.prefixBlocks = ids;
            c.shares(worker, epoch, 0, PrefixCache.BLOCK, ids, kept::contains);
        }

        @Override
        public void drop(Object block) {
            kept.remove(block); // the caches sharing its page count it again
            worker.drop(epoch, (Long) block);
        }
    }
}
