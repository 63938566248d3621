package dev.epic.model.attention;

import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.KvPool;
import dev.epic.model.PrefixStore;
import dev.epic.model.layers.SequenceRows;
import java.util.List;

/**
 * MLA run outside this process (data-parallel attention): the caches of the sequences live where
 * their attention runs. The engine still normalises the input and adds the output to the residual
 * stream; only {@code y = MLA(x)} and the cache writes happen elsewhere.
 */
public interface ExternalAttention {
    /** A fresh, empty cache for one sequence, placed wherever this attention runs. */
    KvCache newCache();

    /** How those caches store positions (what their budgets count). */
    default KvCacheDtype kvCacheDtype() {
        return KvCacheDtype.FP32;
    }

    /**
     * Whether its caches hold the MTP layer as one more layer (index num_hidden_layers) and it runs that
     * layer's attention too: what drafting with the MTP layer needs. False (the default) otherwise.
     */
    default boolean holdsMtpLayer() {
        return false;
    }

    /**
     * y[rows x hidden] = MLA_layer(x) for every row of the step; each sequence's new positions are
     * written to its (remote) cache. All sequences' caches come from {@link #newCache()}.
     */
    void forward(int layer, float[] x, int rows, List<SequenceRows> sequences, float[] y);

    /**
     * Bytes the caches' reservations ({@link KvCache#reserve}) may take together where they live:
     * the scheduler admits and preempts against it as against its own heap's budget. Long.MAX_VALUE
     * (the default) when not known: the caches' owners then refuse what does not fit.
     */
    default long kvCacheBudget() {
        return Long.MAX_VALUE;
    }

    /**
     * The places that may take a new cache now, each with a budget of its own (the live attention
     * workers): a sequence joins only when one of them has room for it. Empty (the default) when
     * none has a budget.
     */
    default List<? extends KvPool> kvPools() {
        return List.of();
    }

    /**
     * Prefix caching where these caches live, up to {@code bytes} of kept KV per place (attention
     * worker), or null (the default) when it cannot cache prefixes.
     */
    default PrefixStore prefixStore(long bytes) {
        return null;
    }
}
