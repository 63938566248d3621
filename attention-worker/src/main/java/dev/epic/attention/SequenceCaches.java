package dev.epic.attention;

import dev.epic.model.KvCache;
import dev.epic.model.attention.AttentionLayers;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The latent KV caches of the sequences placed on this worker, by the coordinator's cache id. A
 * cache is created by its first segment (layer 0, position 0) and belongs to the Attend stream that
 * created it: it goes when the coordinator releases it or when that stream ends (the coordinator
 * then presumes it lost, so nothing is left behind by a coordinator that failed or restarted). At
 * most {@code maxSequences} are held at once.
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

    /** A segment's cache id and where it starts. */
    record Segment(long id, int start) {}

    private final AttentionLayers layers;
    private final int maxSequences;
    private final Map<Long, KvCache> caches = new HashMap<>(); // guarded by this
    private final Map<Long, Object> owners = new HashMap<>();  // guarded by this

    SequenceCaches(AttentionLayers layers, int maxSequences) {
        if (maxSequences < 1) {
            throw new IllegalArgumentException("max sequences must be >= 1, got " + maxSequences);
        }
        this.layers = layers;
        this.maxSequences = maxSequences;
    }

    /**
     * The caches of one message's segments, in order, all or none: unknown ids are created for
     * {@code owner} when the segment starts at position 0 of layer 0; an unknown id anywhere else, a
     * start beyond what a cache holds (layer 0), or more new caches than there is room for refuses
     * the whole message.
     */
    synchronized List<KvCache> acquire(Object owner, int layer, List<Segment> segments) {
        List<Long> fresh = new ArrayList<>();
        for (Segment s : segments) {
            KvCache c = caches.get(s.id());
            if (c == null) {
                if (layer != 0 || s.start() != 0) {
                    throw new Refused("sequence cache " + s.id() + " is not held here (released, its stream ended, or "
                            + "this worker restarted); it cannot continue at layer " + layer + " position " + s.start(),
                            false, List.of(s.id()));
                }
                fresh.add(s.id());
            } else if (layer == 0 && s.start() > c.length()) {
                throw new Refused("sequence cache " + s.id() + " holds " + c.length() + " positions; a step cannot start at "
                        + s.start(), false, List.of(s.id()));
            }
        }
        if (caches.size() + fresh.size() > maxSequences) {
            throw new Refused("attention worker holds " + caches.size() + " of its maximum of " + maxSequences
                    + " sequences: no room for " + fresh.size() + " more", true, fresh);
        }
        for (long id : fresh) {
            caches.put(id, layers.newCache());
        }
        List<KvCache> out = new ArrayList<>(segments.size());
        for (Segment s : segments) {
            out.add(caches.get(s.id()));
            owners.put(s.id(), owner); // a cache moves to the stream that uses it (a coordinator's reopened stream)
        }
        return out;
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
