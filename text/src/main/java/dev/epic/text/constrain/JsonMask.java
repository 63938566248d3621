package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.WeakHashMap;
import java.util.concurrent.CompletableFuture;

/**
 * Which tokens of a vocabulary may come next in a JSON object, from a {@link JsonCursor}: a token is
 * allowed when every one of its bytes can follow. The tokens are walked in byte order, so tokens
 * that share a prefix share its steps, and a prefix that cannot follow rules out every token after
 * it at once. Masks are cached per cursor state: most steps of a generation are inside a string or
 * between values, where the state repeats.
 */
public final class JsonMask {
    private static final int CACHED_STATES = 2048;
    private static final Map<Vocabulary, JsonMask> BY_VOCABULARY = Collections.synchronizedMap(new WeakHashMap<>());

    private final int size;
    /** Token ids in byte order of their bytes; special and empty tokens left out. */
    private final int[] order;
    private final byte[][] bytes;
    /** lcp[i]: bytes that token order[i] shares with order[i - 1]. */
    private final int[] lcp;
    private final int longest;
    /** Per state, its mask once computed; a state asked for by several threads at once is computed once. */
    private final Map<JsonCursor.StateKey, CompletableFuture<BitSet>> cache = new LinkedHashMap<>(256, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<JsonCursor.StateKey, CompletableFuture<BitSet>> e) {
            return size() > CACHED_STATES;
        }
    };

    private JsonMask(Vocabulary vocab) {
        size = vocab.size();
        bytes = new byte[size][];
        Integer[] ids = new Integer[size];
        int n = 0;
        int longestToken = 0;
        for (int id = 0; id < size; id++) {
            byte[] b = vocab.tokenBytes(id);
            if (b.length > 0 && !vocab.isSpecial(id)) {
                bytes[id] = b;
                ids[n++] = id;
                longestToken = Math.max(longestToken, b.length);
            }
        }
        Arrays.sort(ids, 0, n, (a, b) -> Arrays.compareUnsigned(bytes[a], bytes[b]));
        order = new int[n];
        lcp = new int[n];
        for (int i = 0; i < n; i++) {
            order[i] = ids[i];
            if (i > 0) {
                int m = Arrays.mismatch(bytes[ids[i - 1]], bytes[ids[i]]);
                lcp[i] = m < 0 ? bytes[ids[i]].length : m;
            }
        }
        longest = longestToken;
    }

    /** The shared tables of a vocabulary (built once: about a second for DeepSeek-V3's 129K tokens). */
    public static JsonMask of(Vocabulary vocab) {
        return BY_VOCABULARY.computeIfAbsent(vocab, JsonMask::new);
    }

    /** Token ids [0, vocabulary size) that may follow {@code at}; the caller must not change the set. */
    public BitSet allowed(JsonCursor at) {
        JsonCursor.StateKey key = at.key();
        CompletableFuture<BitSet> mine = new CompletableFuture<>();
        CompletableFuture<BitSet> known;
        synchronized (cache) {
            known = cache.putIfAbsent(key, mine);
        }
        if (known != null) {
            return known.join();
        }
        try {
            mine.complete(compute(at));
        } catch (RuntimeException | Error e) {
            mine.completeExceptionally(e);
            synchronized (cache) {
                cache.remove(key, mine);
            }
            throw e;
        }
        return mine.join();
    }

    private BitSet compute(JsonCursor at) {
        BitSet mask = new BitSet(size);
        // cursors[d]: the state after the current token's first d bytes; valid[d]: those bytes can follow.
        JsonCursor[] cursors = new JsonCursor[longest + 1];
        for (int d = 0; d <= longest; d++) {
            cursors[d] = new JsonCursor();
        }
        cursors[0].copyFrom(at);
        int good = 0; // bytes of the previous token known to be a valid prefix
        for (int i = 0; i < order.length; i++) {
            byte[] t = bytes[order[i]];
            int shared = Math.min(lcp[i], good);
            if (lcp[i] > good) {
                continue; // extends a prefix that already failed: cannot follow either
            }
            int d = shared;
            for (; d < t.length; d++) {
                cursors[d + 1].copyFrom(cursors[d]);
                if (!cursors[d + 1].step(t[d] & 0xff)) {
                    break;
                }
            }
            good = d;
            if (d == t.length) {
                mask.set(order[i]);
            }
        }
        return mask;
    }
}
