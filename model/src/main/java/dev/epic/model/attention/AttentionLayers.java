package dev.epic.model.attention;

import dev.epic.model.HeapKvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mla;
import dev.epic.model.layers.Rope;
import dev.epic.model.layers.Yarn;

/** The MLA of every decoder layer and nothing else: what an attention worker loads and runs. */
public final class AttentionLayers {
    private final ModelConfig config;
    private final Mla[] layers;

    private AttentionLayers(ModelConfig config, Mla[] layers) {
        this.config = config;
        this.layers = layers;
    }

    /** Opens the attention weights of layers 0 .. num_hidden_layers-1 (the MTP layer is never loaded). */
    public static AttentionLayers load(ModelConfig c, WeightSource w) {
        Rope rope = Yarn.rope(c);
        Mla[] layers = new Mla[c.numHiddenLayers()];
        for (int i = 0; i < layers.length; i++) {
            layers[i] = new Mla(c, w, i, rope);
        }
        return new AttentionLayers(c, layers);
    }

    public int count() {
        return layers.length;
    }

    public Mla layer(int index) {
        if (index < 0 || index >= layers.length) {
            throw new IllegalArgumentException("layer " + index + " outside [0, " + layers.length + ")");
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

    /** Bytes of attention weights one decoded token reads, all layers. */
    public long storageBytes() {
        long bytes = 0;
        for (Mla m : layers) {
            bytes += m.storageBytes();
        }
        return bytes;
    }
}
