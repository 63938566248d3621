package dev.epic.coordinator.scheduler;

import dev.epic.model.KvCache;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
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
 * and rotated key of its positions: a position's KV depends only on the tokens up to it, so a block
 * found under the same path is the one the sequence would compute. Least recently used leaves go
 * first when the byte budget is full.
 *
 * <p>Used from the engine thread only; the counters may be read from any thread.
 */
public final class PrefixCache {
    public static final int BLOCK = 16;

    private final long capacityBytes;
    private final int layers;
    private final int rank;
    private final int rope;
    private final long blockBytes;
    private final Node root = new Node(null, null, null, null);
    private final Set<Node> nodes = new HashSet<>(); // every block (identity: Node keeps Object's equals)
    private volatile long bytes; // written by the engine thread only; read by meters
    private long clock;
    private final AtomicLong queriedTokens = new AtomicLong();
    private final AtomicLong hitTokens = new AtomicLong();

    /** One block of BLOCK positions under its parent's prefix. */
    private static final class Node {
        final Node parent;
        final Key key;
        final float[][] latent; // [layer][BLOCK x rank]
        final float[][] kPe;    // [layer][BLOCK x rope]
        final Map<Key, Node> children = new HashMap<>();
        long lastUsed;

        Node(Node parent, Key key, float[][] latent, float[][] kPe) {
            this.parent = parent;
            this.key = key;
            this.latent = latent;
            this.kPe = kPe;
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
        if (capacityBytes < 0) {
            throw new IllegalArgumentException("prefix cache size must be >= 0, got " + capacityBytes);
        }
        this.capacityBytes = capacityBytes;
        this.layers = layers;
        this.rank = rank;
        this.rope = rope;
        this.blockBytes = (long) layers * BLOCK * (rank + rope) * Float.BYTES;
    }

    /**
     * Writes the longest cached prefix of {@code prompt} into the empty {@code cache} and returns its
     * length in tokens: whole blocks, always leaving the prompt's last token to compute, since its
     * logits are the first the sequence needs.
     */
    public int restore(int[] prompt, KvCache cache) {
        queriedTokens.addAndGet(prompt.length);
        int blocks = (prompt.length - 1) / BLOCK;
        Node node = root;
        int matched = 0;
        long now = ++clock;
        while (matched < blocks) {
            Node child = node.children.get(Key.of(prompt, matched));
            if (child == null) {
                break;
            }
            child.lastUsed = now;
            for (int layer = 0; layer < layers; layer++) {
                for (int p = 0; p < BLOCK; p++) {
                    cache.write(layer, matched * BLOCK + p, child.latent[layer], p * rank, child.kPe[layer], p * rope);
                }
            }
            node = child;
            matched++;
        }
        int tokens = matched * BLOCK;
        cache.setLength(tokens);
        hitTokens.addAndGet(tokens);
        return tokens;
    }

    /**
     * Keeps the whole blocks of {@code prompt} that {@code cache} now holds (call once its prompt is
     * prefilled), evicting the least recently used blocks of other prefixes to stay in budget.
     */
    public void store(int[] prompt, KvCache cache) {
        int blocks = Math.min(prompt.length, cache.length()) / BLOCK;
        Node node = root;
        int b = 0;
        long now = ++clock;
        for (; b < blocks; b++) {
            Node child = node.children.get(Key.of(prompt, b));
            if (child == null) {
                break;
            }
            child.lastUsed = now;
            node = child;
        }
        if (b == blocks) {
            return;
        }
        int end = blocks * BLOCK;
        float[][] lat = new float[layers][];
        float[][] pe = new float[layers][];
        for (int layer = 0; layer < layers; layer++) {
            lat[layer] = cache.latents(layer, end, rank, rope);
            pe[layer] = cache.ropeKeys(layer, end, rank, rope);
        }
        int fits = makeRoom(blocks - b, node);
        for (int stop = b + fits; b < stop; b++) {
            float[][] bl = new float[layers][];
            float[][] bp = new float[layers][];
            for (int layer = 0; layer < layers; layer++) {
                bl[layer] = Arrays.copyOfRange(lat[layer], b * BLOCK * rank, (b + 1) * BLOCK * rank);
                bp[layer] = Arrays.copyOfRange(pe[layer], b * BLOCK * rope, (b + 1) * BLOCK * rope);
            }
            Node child = new Node(node, Key.of(prompt, b), bl, bp);
            child.lastUsed = now;
            node.children.put(child.key, child);
            nodes.add(child);
            bytes += blockBytes;
            node = child;
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
                if (parent != root && parent != keep && parent.children.isEmpty()) {
                    leaves.add(parent);
                }
            }
        }
        return (int) Math.max(0, Math.min(wanted, (capacityBytes - bytes) / blockBytes));
    }

    /** Whether a prompt of this many tokens can keep all the blocks a later request would restore. */
    public boolean canHold(int promptTokens) {
        long blocks = (promptTokens - 1) / BLOCK;
        return blocks > 0 && blocks * blockBytes <= capacityBytes;
    }

    /** Prompt tokens looked up so far. */
    public long queriedTokens() {
        return queriedTokens.get();
    }

    /** Prompt tokens found cached so far (not prefilled again). */
    public long hitTokens() {
        return hitTokens.get();
    }

    /** Bytes of latent KV held now. */
    public long storedBytes() {
        return bytes;
    }

    /** Bytes of one block of {@link #BLOCK} positions (all layers). */
    public long blockBytes() {
        return blockBytes;
    }
}
