package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import dev.epic.text.output.DeepSeekMarkers;
import java.util.Arrays;
import java.util.BitSet;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;
import java.util.concurrent.CompletableFuture;

/**
 * Which tokens of a vocabulary may come next under a grammar, from an automaton's state: a token is
 * allowed when every one of its bytes can follow. The tokens are walked in byte order, so tokens
 * that share a prefix share its steps, and a prefix that cannot follow rules out every token after
 * it at once. Masks are cached per state: most steps of a generation are inside a string or between
 * values, where the state repeats. One TokenMask per grammar; the vocabulary's byte order is shared.
 */
public final class TokenMask<A extends ByteAutomaton<A>> {
    private static final Map<Vocabulary, Order> ORDERS = Collections.synchronizedMap(new WeakHashMap<>());

    /** A vocabulary's tokens in byte order, with what each shares with the one before. */
    private static final class Order {
        final int size;
        /**
         * Token ids in byte order of their bytes; special and empty tokens left out, and so are the
         * DeepSeek markers (tool calls, thinking): control tokens, never text inside a grammar.
         */
        final int[] ids;
        final byte[][] bytes;
        /** lcp[i]: bytes that token ids[i] shares with ids[i - 1]. */
        final int[] lcp;
        final int longest;

        Order(Vocabulary vocab) {
            size = vocab.size();
            bytes = new byte[size][];
            Integer[] sorted = new Integer[size];
            int n = 0;
            int longestToken = 0;
            Set<Integer> markers = DeepSeekMarkers.ids(vocab, DeepSeekMarkers.PARSED);
            for (int id = 0; id < size; id++) {
                byte[] b = vocab.tokenBytes(id);
                if (b.length > 0 && !vocab.isSpecial(id) && !markers.contains(id)) {
                    bytes[id] = b;
                    sorted[n++] = id;
                    longestToken = Math.max(longestToken, b.length);
                }
            }
            Arrays.sort(sorted, 0, n, (a, b) -> Arrays.compareUnsigned(bytes[a], bytes[b]));
            ids = new int[n];
            lcp = new int[n];
            for (int i = 0; i < n; i++) {
                ids[i] = sorted[i];
                if (i > 0) {
                    int m = Arrays.mismatch(bytes[sorted[i - 1]], bytes[sorted[i]]);
                    lcp[i] = m < 0 ? bytes[sorted[i]].length : m;
                }
            }
            longest = longestToken;
        }
    }

    private final Order order;
    /** Per state, its mask once computed; a state asked for by several threads at once is computed once. */
    private final Map<Object, CompletableFuture<BitSet>> cache;

    /**
     * A mask for one grammar over {@code vocab}. At most {@code cachedStates} masks are kept, each a
     * bit per token (16 KB for 129K tokens). The vocabulary's order is built once, about a second
     * for 129K tokens.
     */
    public TokenMask(Vocabulary vocab, int cachedStates) {
        this.order = ORDERS.computeIfAbsent(vocab, Order::new);
        this.cache = new LinkedHashMap<>(256, 0.75f, true) {
            @Override
            protected boolean removeEldestEntry(Map.Entry<Object, CompletableFuture<BitSet>> e) {
                return size() > cachedStates;
            }
        };
    }

    /** Token ids [0, vocabulary size) that may follow {@code at}; the caller must not change the set. */
    public BitSet allowed(A at) {
        Object key = at.key(order.longest);
        CompletableFuture<BitSet> known;
        CompletableFuture<BitSet> mine = null;
        synchronized (cache) {
            known = cache.get(key);
            if (known == null) {
                cache.put(key, mine = new CompletableFuture<>());
            }
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

    /** Sets logits[id] = -inf for the ids in [0, n) that cannot follow {@code at}. */
    public void restrict(A at, float[] logits, int n) {
        BitSet ok = allowed(at);
        for (int id = ok.nextClearBit(0); id < n; id = ok.nextClearBit(id + 1)) {
            logits[id] = Float.NEGATIVE_INFINITY;
        }
    }

    /** Whether {@code id} is walked at all (not special, not a marker): a token a grammar may allow. */
    public boolean walks(int id) {
        return id >= 0 && id < order.size && order.bytes[id] != null;
    }

    private BitSet compute(A at) {
        BitSet mask = new BitSet(order.size);
        // states[d]: the state after the current token's first d bytes.
        java.util.List<A> states = new java.util.ArrayList<>(order.longest + 1);
        for (int d = 0; d <= order.longest; d++) {
            states.add(at.copy());
        }
        int good = 0; // bytes of the previous token known to be a valid prefix
        for (int i = 0; i < order.ids.length; i++) {
            byte[] t = order.bytes[order.ids[i]];
            if (order.lcp[i] > good) {
                continue; // extends a prefix that already failed: cannot follow either
            }
            int d = order.lcp[i];
            for (; d < t.length; d++) {
                A next = states.get(d + 1);
                next.copyFrom(states.get(d));
                if (!next.step(t[d] & 0xff)) {
                    break;
                }
            }
            good = d;
            if (d == t.length) {
                mask.set(order.ids[i]);
            }
        }
        return mask;
    }
}
