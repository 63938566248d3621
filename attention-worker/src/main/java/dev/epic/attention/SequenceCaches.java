package dev.epic.attention;

import dev.epic.model.KvCache;
import dev.epic.model.attention.AttentionLayers;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The latent KV caches of the sequences placed on this worker, by the coordinator's cache id. A
 * cache is created by its first segment (position 0) and dropped by a release; at most
 * {@code maxSequences} are held at once.
 */
final class SequenceCaches {
    /** Why a cache cannot be used, with the gRPC status the coordinator should see. */
    static final class Refused extends RuntimeException {
        final boolean exhausted;

        Refused(String message, boolean exhausted) {
            super(message, null, false, false);
            this.exhausted = exhausted;
        }
    }

    private final AttentionLayers layers;
    private final int maxSequences;
    private final Map<Long, KvCache> caches = new ConcurrentHashMap<>();

    SequenceCaches(AttentionLayers layers, int maxSequences) {
        if (maxSequences < 1) {
            throw new IllegalArgumentException("max sequences must be >= 1, got " + maxSequences);
        }
        this.layers = layers;
        this.maxSequences = maxSequences;
    }

    /**
     * The cache for a segment of layer {@code layer} starting at {@code start}: created for a first
     * segment (layer 0, position 0), otherwise it must exist and, on layer 0, hold at least
     * {@code start} positions.
     */
    KvCache forSegment(long id, int layer, int start) {
        KvCache c = caches.get(id);
        if (c == null) {
            if (layer != 0 || start != 0) {
                throw new Refused("sequence cache " + id + " is not held here (released, or this worker restarted)"
                        + "; it cannot continue at layer " + layer + " position " + start, false);
            }
            synchronized (this) {
                if (caches.size() >= maxSequences) {
                    throw new Refused("attention worker holds its maximum of " + maxSequences + " sequences", true);
                }
                c = caches.computeIfAbsent(id, k -> layers.newCache());
            }
        } else if (layer == 0 && start > c.length()) {
            throw new Refused("sequence cache " + id + " holds " + c.length() + " positions; a step cannot start at "
                    + start, false);
        }
        return c;
    }

    void release(long id) {
        caches.remove(id);
    }

    int size() {
        return caches.size();
    }

    int maxSequences() {
        return maxSequences;
    }

    long positions() {
        long n = 0;
        for (KvCache c : caches.values()) {
            n += c.length();
        }
        return n;
    }
}
