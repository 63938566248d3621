package dev.epic.coordinator.scheduler;

import dev.epic.model.KvBlock;
import dev.epic.model.KvPage;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvCache;
import dev.epic.model.PrefixStore;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Automatic prefix caching: the latent KV of prompt prefixes seen before, so a request that starts
 * like an earlier one (the same system prompt, the earlier turns of a chat) prefills only what is new.
 *
 * <p>Prefixes are kept in whole blocks of {@link #BLOCK} tokens in a trie keyed by each block's
 * tokens, so a match is exact and never a hash collision. A block holds, for every layer, the latent
 * and rotated key of its positions ({@link KvBlock}): a position's KV depends only on the tokens up to
 * it, so a block found under the same path is the one the sequence would compute. Least recently used
 * leaves go first when the byte budget is full. The trie is this class; where the blocks' KV lives is
 * its {@link Blocks}: this process's heap, or an attention worker.
 *
 * <p>In this process's heap the blocks may also be kept on disk ({@link PrefixDisk}, write-through): a
 * prompt whose cached path in memory ends goes on from the blocks on disk, read back into the trie.
 *
 * <p>Used from the engine thread only; the counters may be read from any thread.
 */
public final class PrefixCache implements PrefixStore {
    public static final int BLOCK = KvPage.POSITIONS;

    /** Where the blocks' KV is kept. Handles are what {@link #keep} returns, one per block. */
    public interface Blocks {
        /** Keeps {@code count} blocks of {@link #BLOCK} positions of {@code cache} from {@code start}. */
        Object[] keep(KvCache cache, int start, int count);

        /** Starts the empty {@code cache} with these blocks' positions, in order. */
        void restore(List<Object> blocks, KvCache cache);

        /** The block was evicted. */
        void drop(Object block);
    }

    /** Blocks in this process's heap, as {@link KvBlock}s. */
    private record HeapBlocks(int layers, int rank, int rope) implements Blocks {
        @Override
        public Object[] keep(KvCache cache, int start, int count) {
            return KvBlock.copy(cache, layers, rank, rope, start, BLOCK, count);
        }

        @Override
        public void restore(List<Object> blocks, KvCache cache) {
            for (int b = 0; b < blocks.size(); b++) {
                ((KvBlock) blocks.get(b)).writeTo(cache, b * BLOCK);
            }
        }

        @Override
        public void drop(Object block) {
            ((KvBlock) block).release(); // running caches sharing its page count it again
        }
    }

    private final long capacityBytes;
    private final Blocks blocks;
    private final long blockBytes;
    private final PrefixDisk disk; // null: memory only
    private final Node root;
    private final Set<Node> nodes = new HashSet<>(); // every block (identity: Node keeps Object's equals)
    private volatile long bytes; // written by the engine thread only; read by meters
    private long clock;
    private final AtomicLong queriedTokens = new AtomicLong();
    private final AtomicLong hitTokens = new AtomicLong();
    private final AtomicLong diskHitTokens = new AtomicLong();

    /** One block of BLOCK positions under its parent's prefix. */
    private static final class Node {
        final Node parent;
        final Key key;
        final Object block; // the Blocks' handle
        final byte[] hash; // its prefix's hash on disk (PrefixDisk.next); null without a disk tier
        final Map<Key, Node> children = new HashMap<>();
        long lastUsed;

        Node(Node parent, Key key, Object block, byte[] hash) {
            this.parent = parent;
            this.key = key;
            this.block = block;
            this.hash = hash;
        }
    }

    /** A block's tokens, compared by value. */
    private record Key(int[] tokens) {
        static Key of(int[] prompt, int block) {
            return new Key(Arrays.copyOfRange(prompt, block * BLOCK, (block + 1) * BLOCK));
        }

        @Override
        public boolean equals(Object o) {
            return o instanceof Key k && Arrays.equals(tokens, k.tokens);
        }

        @Override
        public int hashCode() {
            return Arrays.hashCode(tokens);
        }
    }

    /**
     * @param capacityBytes latent storage the cache may hold
     * @param layers        the model's decoder layers
     * @param rank          kv_lora_rank
     * @param rope          qk_rope_head_dim
     */
    public PrefixCache(long capacityBytes, int layers, int rank, int rope) {
        this(capacityBytes, layers, rank, rope, KvCacheDtype.FP32);
    }

    /** As above, for caches that store in {@code dtype}: the blocks keep their values as stored. */
    public PrefixCache(long capacityBytes, int layers, int rank, int rope, KvCacheDtype dtype) {
        this(capacityBytes, layers, rank, rope, dtype, null);
    }

    /** As above, the blocks also written to {@code disk} and read back from it (null: memory only). */
    public PrefixCache(long capacityBytes, int layers, int rank, int rope, KvCacheDtype dtype, PrefixDisk disk) {
        this(capacityBytes, KvBlock.bytes(layers, BLOCK, rank, rope, dtype), new HeapBlocks(layers, rank, rope), disk);
    }

    /**
     * @param blockBytes what one block costs in the budget
     * @param blocks     where the blocks are kept
     */
    public PrefixCache(long capacityBytes, long blockBytes, Blocks blocks) {
        this(capacityBytes, blockBytes, blocks, null);
    }

    private PrefixCache(long capacityBytes, long blockBytes, Blocks blocks, PrefixDisk disk) {
        if (capacityBytes < 0) {
            throw new IllegalArgumentException("prefix cache size must be >= 0, got " + capacityBytes);
        }
        this.capacityBytes = capacityBytes;
        this.blockBytes = blockBytes;
        this.blocks = blocks;
        this.disk = disk;
        this.root = new Node(null, null, null, disk == null ? null : disk.root());
    }

    /** The blocks of {@code prompt}'s first {@code most} whole blocks that are cached, in order (the trie's path). */
    private List<Node> path(int[] prompt, int most) {
        List<Node> path = new ArrayList<>();
        Node node = root;
        while (path.size() < most && (node = node.children.get(Key.of(prompt, path.size()))) != null) {
            path.add(node);
        }
        return path;
    }

    /** Whole blocks a cache for {@code prompt} starts from: never its last token, whose logits are the first needed. */
    private static int restorable(int[] prompt) {
        return (prompt.length - 1) / BLOCK;
    }

    /**
     * Tokens of the longest cached prefix of {@code prompt} that {@link #restore} would start a cache
     * with (whole blocks, leaving the prompt's last token); changes nothing.
     */
    public int matchedTokens(int[] prompt) {
        return path(prompt, restorable(prompt)).size() * BLOCK;
    }

    @Override
    public int matchedTokens(int[] prompt, int positions) {
        return matchedTokens(prompt);
    }

    /**
     * Starts the empty {@code cache} with the longest cached prefix of {@code prompt} and returns its
     * length in tokens: whole blocks, always leaving the prompt's last token to compute, since its
     * logits are the first the sequence needs.
     */
    @Override
    public int restore(int[] prompt, KvCache cache) {
        return restore(prompt, cache, (ReadAhead) null);
    }

    /**
     * Blocks read ahead from disk for a waiting prompt ({@link #readAhead}): done once {@code blocks}
     * completes; {@link #restore(int[], KvCache, ReadAhead)} takes what it uses, and what is left is let go.
     */
    public record ReadAhead(java.util.concurrent.CompletableFuture<Map<String, KvBlock>> blocks, long bytes) {}

    /** Bytes of blocks read ahead and not yet restored or let go; held within the cache's own budget. */
    private long readAheadBytes;

    /**
     * Starts reading, off the engine thread, the blocks on disk that {@link #restore} would start
     * {@code prompt} from beyond those in memory, as many as this cache's budget holds beside other read
     * aheads; null when there are none (or no disk tier). Give the result to {@code restore}, or to
     * {@link #letGo} if the prompt never starts.
     */
    public ReadAhead readAhead(int[] prompt) {
        if (disk == null) {
            return null;
        }
        List<Node> path = path(prompt, restorable(prompt));
        byte[] parent = (path.isEmpty() ? root : path.getLast()).hash;
        long most = Math.min(restorable(prompt) - path.size(), (capacityBytes - readAheadBytes) / blockBytes);
        List<byte[]> hashes = new ArrayList<>();
        List<byte[]> parents = new ArrayList<>();
        List<int[]> tokens = new ArrayList<>();
        for (int b = path.size(); b < path.size() + most; b++) {
            int[] t = Key.of(prompt, b).tokens();
            byte[] hash = PrefixDisk.next(parent, t);
            if (!disk.has(hash)) {
                break;
            }
            hashes.add(hash);
            parents.add(parent);
            tokens.add(t);
            parent = hash;
        }
        if (hashes.isEmpty()) {
            return null;
        }
        long bytes = hashes.size() * blockBytes;
        readAheadBytes += bytes;
        return new ReadAhead(disk.readAhead(hashes, parents, tokens).exceptionally(e -> Map.of()), bytes);
    }

    /** The prompt read ahead for will not start: its blocks go. */
    public void letGo(ReadAhead r) {
        readAheadBytes -= r.bytes();
        r.blocks().thenAccept(m -> m.values().forEach(KvBlock::release));
    }

    /**
     * As {@link #restore(int[], KvCache)}, taking the blocks on disk from {@code readAhead} (done; may be
     * null) before reading any on this thread.
     */
    public int restore(int[] prompt, KvCache cache, ReadAhead readAhead) {
        Map<String, KvBlock> ready = readAhead == null ? new HashMap<>() : new HashMap<>(readAhead.blocks().join());
        if (readAhead != null) {
            readAheadBytes -= readAhead.bytes();
        }
        try {
            return restore(prompt, cache, ready);
        } finally {
            ready.values().forEach(KvBlock::release); // read ahead but not used: memory had them by now
        }
    }

    private int restore(int[] prompt, KvCache cache, Map<String, KvBlock> ready) {
        queriedTokens.addAndGet(prompt.length);
        List<Node> path = path(prompt, restorable(prompt));
        long now = ++clock;
        List<Object> found = new ArrayList<>(path.size());
        for (Node n : path) {
            n.lastUsed = now;
            found.add(n.block);
        }
        List<KvBlock> loose = disk == null ? List.of() : fromDisk(prompt, path, found, now, ready);
        int tokens = found.size() * BLOCK;
        if (tokens > 0) {
            blocks.restore(found, cache);
        }
        loose.forEach(KvBlock::release); // the cache holds their pages now, counted as its own
        cache.setLength(tokens);
        hitTokens.addAndGet(tokens);
        diskHitTokens.addAndGet((long) (found.size() - path.size()) * BLOCK);
        return tokens;
    }

    /**
     * Goes on from the end of {@code path}, the prompt's cached blocks in memory, with the blocks on disk,
     * adding them to {@code found}: each goes into the trie while the budget has room for it, and is
     * returned as loose once it has not (its cache then counts it).
     */
    private List<KvBlock> fromDisk(int[] prompt, List<Node> path, List<Object> found, long now,
            Map<String, KvBlock> ready) {
        List<KvBlock> loose = new ArrayList<>();
        Node node = path.isEmpty() ? root : path.getLast();
        byte[] parent = node.hash;
        for (int b = path.size(); b < restorable(prompt); b++) {
            Key key = Key.of(prompt, b);
            byte[] hash = PrefixDisk.next(parent, key.tokens());
            KvBlock block = ready.remove(PrefixDisk.name(hash));
            if (block == null) {
                block = disk.load(hash, parent, key.tokens());
            }
            if (block == null) {
                break;
            }
            found.add(block);
            if (loose.isEmpty() && makeRoom(1, node) == 1) {
                Node child = new Node(node, key, block, hash);
                child.lastUsed = now;
                node.children.put(key, child);
                nodes.add(child);
                bytes += blockBytes;
                node = child;
            } else {
                loose.add(block);
            }
            parent = hash;
        }
        return loose;
    }

    /**
     * Keeps the whole blocks of {@code prompt} that {@code cache} now holds (call once its prompt is
     * prefilled), evicting the least recently used blocks of other prefixes to stay in budget.
     */
    @Override
    public void store(int[] prompt, KvCache cache) {
        int wanted = Math.min(prompt.length, cache.length()) / BLOCK;
        List<Node> path = path(prompt, wanted);
        long now = ++clock;
        path.forEach(n -> n.lastUsed = now);
        int b = path.size();
        if (b == wanted) {
            return;
        }
        Node node = path.isEmpty() ? root : path.getLast();
        int fits = makeRoom(wanted - b, node);
        if (fits == 0) {
            return;
        }
        Object[] kept = blocks.keep(cache, b * BLOCK, fits);
        for (Object block : kept) {
            Key key = Key.of(prompt, b);
            byte[] hash = disk == null ? null : PrefixDisk.next(node.hash, key.tokens());
            if (disk != null) {
                disk.save(hash, node.hash, key.tokens(), (KvBlock) block); // write-through: a restart finds it
            }
            Node child = new Node(node, key, block, hash);
            child.lastUsed = now;
            node.children.put(child.key, child);
            nodes.add(child);
            bytes += blockBytes;
            node = child;
            b++;
        }
    }

    /**
     * Evicts least recently used leaves until {@code wanted} more blocks fit, never {@code keep} (the
     * block they will hang from; its ancestors are not leaves). Returns how many fit. One scan builds a
     * heap of the leaves; a parent whose last child goes joins it. A full cache evicts a sixteenth of
     * its budget beyond what is wanted, so the scan runs once per that many new blocks, not per store.
     */
    private int makeRoom(int wanted, Node keep) {
        if (bytes + wanted * blockBytes > capacityBytes) {
            long slack = capacityBytes / 16 / blockBytes * blockBytes;
            PriorityQueue<Node> leaves = new PriorityQueue<>(Comparator.comparingLong((Node n) -> n.lastUsed));
            for (Node n : nodes) {
                if (n.children.isEmpty() && n != keep) {
                    leaves.add(n);
                }
            }
            while (bytes + wanted * blockBytes + slack > capacityBytes && !leaves.isEmpty()) {
                Node victim = leaves.poll();
                Node parent = victim.parent;
                parent.children.remove(victim.key);
                nodes.remove(victim);
                bytes -= blockBytes;
                blocks.drop(victim.block);
                if (parent != root && parent != keep && parent.children.isEmpty()) {
                    leaves.add(parent);
                }
            }
        }
        return (int) Math.max(0, Math.min(wanted, (capacityBytes - bytes) / blockBytes));
    }

    /** Whether a prompt of this many tokens can keep all the blocks a later request would restore. */
    @Override
    public boolean canHold(int promptTokens) {
        long whole = (promptTokens - 1) / BLOCK;
        return whole > 0 && whole * blockBytes <= capacityBytes;
    }

    /** Prompt tokens looked up so far. */
    @Override
    public long queriedTokens() {
        return queriedTokens.get();
    }

    /** Prompt tokens found cached so far (not prefilled again). */
    @Override
    public long hitTokens() {
        return hitTokens.get();
    }

    /** Prompt tokens of those hits read back from disk. */
    public long diskHitTokens() {
        return diskHitTokens.get();
    }

    /** The disk tier, or null. */
    public PrefixDisk disk() {
        return disk;
    }

    /** Bytes of latent KV held now. */
    @Override
    public long storedBytes() {
        return bytes;
    }

    /** Bytes of one block of {@link #BLOCK} positions (all layers). */
    public long blockBytes() {
        return blockBytes;
    }
}
