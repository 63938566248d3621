package dev.epic.model.attention;

import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mla;
import dev.epic.model.layers.Mtp;
import dev.epic.model.layers.Rope;
import dev.epic.model.layers.Yarn;

/**
 * The MLA of every decoder layer and, when the checkpoint has one, of its multi-token-prediction
 * layer (index num_hidden_layers, for coordinators that draft with it), and nothing else: what an
 * attention worker loads and runs.
 */
public final class AttentionLayers {
    private final ModelConfig config;
    private final Mla[] layers;
    private final Mla mtp; // null: the checkpoint has no MTP layer

    private AttentionLayers(ModelConfig config, Mla[] layers, Mla mtp) {
        this.config = config;
        this.layers = layers;
        this.mtp = mtp;
    }

    /**
     * Opens the attention weights of layers 0 .. num_hidden_layers-1, and the MTP layer's when the
     * checkpoint has it. A memory-mapped checkpoint costs nothing for a layer never run.
     */
    public static AttentionLayers load(ModelConfig c, WeightSource w) {
        Rope rope = Yarn.rope(c);
        Mla[] layers = new Mla[c.numHiddenLayers()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = new Mla(c, w, i, rope);
        }
        int m = c.numHiddenLayers();
        boolean hasMtp = Mtp.missing(c) == null
                && w.contains("model.layers." + m + ".self_attn.kv_a_proj_with_mqa.weight");
        return new AttentionLayers(c, layers, hasMtp ? new Mla(c, w, m, rope) : null);
    }

    /** The decoder's layers (the MTP layer not counted). */
    public int count() {
        return layers.length;
    }

    /** Whether it runs the MTP layer's attention too, as layer {@link #count()}. */
    public boolean hasMtpLayer() {
        return mtp != null;
    }

    /** Layers whose attention it runs: the decoder's, and the MTP layer when it has one. */
    public int servedLayers() {
        return layers.length + (mtp != null ? 1 : 0);
    }

    /**
     * Why a cache of {@code cacheLayers} layers cannot be made here, or null when it can: the decoder's
     * layers, or those and the MTP layer's when it has one.
     */
    public String cacheLayersRefusal(int cacheLayers) {
        return cacheLayers == layers.length || cacheLayers == servedLayers() ? null
                : "a cache of " + cacheLayers + " layers: this model's hold " + layers.length
                        + (mtp != null ? ", or " + servedLayers() + " with the MTP layer" : " (its checkpoint has no MTP layer)");
    }

    /** Layer {@code index}'s MLA: a decoder layer's, or at index {@link #count()} the MTP layer's. */
    public Mla layer(int index) {
        if (index == layers.length && mtp != null) {
            return mtp;
        }
        if (index < 0 || index >= layers.length) {
            throw new IllegalArgumentException("layer " + index + " outside [0, " + layers.length + ")"
                    + (mtp != null ? " and not the MTP layer " + layers.length : ""));
        }
        return layers[index];
    }

    public ModelConfig config() {
        return config;
    }

    /** A fresh, empty cache for one sequence, sized like the engine's own, storing in {@code dtype}. */
    public HeapKvCache newCache(KvCacheDtype dtype) {
        return HeapKvCache.forModel(config, dtype);
    }

    /** As {@link #newCache(KvCacheDtype)} with {@code cacheLayers} layers: the decoder's, or those and the MTP layer's. */
    public HeapKvCache newCache(KvCacheDtype dtype, int cacheLayers) {
        String refusal = cacheLayersRefusal(cacheLayers);
        if (refusal != null) {
            throw new IllegalArgumentException(refusal);
        }
        return HeapKvCache.forModel(config, dtype, cacheLayers);
    }

    /** Bytes of attention weights one decoded token reads, all decoder layers (the MTP layer's left out). */
    public long storageBytes() {
        long bytes = 0;
        for (Mla m : layers) {
            bytes += m.storageBytes();
        }
        return bytes;
    }
}
