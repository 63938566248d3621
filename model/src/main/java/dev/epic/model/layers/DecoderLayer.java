package dev.epic.model.layers;

import dev.epic.kernels.VectorOps;
import dev.epic.model.ForwardObserver;
import dev.epic.model.WeightSource;
import dev.epic.model.attention.ExternalAttention;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.RoutedExperts;
import java.util.List;

/** One pre-norm block: {@code h += MLA(RMSNorm(h)); h += FFN(RMSNorm(h))}, FFN = dense MLP or MoE. */
public final class DecoderLayer {
    private final int index;
    private final int hidden;
    private final RmsNorm inputNorm;
    private final Mla attention;
    private final ExternalAttention external; // null: attention runs here
    private final RmsNorm postAttentionNorm;
    private final Mlp mlp; // dense layers
    private final Moe moe; // MoE layers

    /**
     * @param external where attention runs when not in this process (null: here). The layer's MLA
     *                 weights are still opened: a memory-mapped checkpoint costs nothing untouched,
     *                 and their size counts in the bytes a decoded token reads.
     */
    public DecoderLayer(ModelConfig c, WeightSource w, int index, Rope rope, RoutedExperts experts,
            ExternalAttention external) {
        String p = "model.layers." + index + ".";
        this.index = index;
        this.external = external;
        this.hidden = c.hiddenSize();
        this.inputNorm = new RmsNorm(w.vector(p + "input_layernorm.weight", hidden), c.rmsNormEps());
        this.attention = new Mla(c, w, index, rope);
        this.postAttentionNorm = new RmsNorm(w.vector(p + "post_attention_layernorm.weight", hidden), c.rmsNormEps());
        if (c.isMoeLayer(index)) {
            this.moe = new Moe(c, w, index, experts);
            this.mlp = null;
        } else {
            this.mlp = Mlp.load(w, p + "mlp", hidden, c.intermediateSize());
            this.moe = null;
        }
    }

    /** Updates the residual stream h[rows x hidden] in place. */
    public void forward(float[] h, int rows, List<SequenceRows> sequences, ForwardObserver observer) {
        float[] x = new float[rows * hidden];
        float[] y = new float[rows * hidden];
        attend(h, rows, sequences, x, y);
        Routing routing = feedForward(h, rows, null, x, y);
        if (routing != null) {
            observer.routing(index, routing);
        }
    }

    /** The attention half: {@code h += MLA(RMSNorm(h))}. */
    public void attend(float[] h, int rows, List<SequenceRows> sequences) {
        attend(h, rows, sequences, new float[rows * hidden], new float[rows * hidden]);
    }

    /**
     * The feed-forward half: {@code h += FFN(RMSNorm(h))}. {@code alongside} (may be null) runs on this
     * thread while the routed experts compute elsewhere (after a dense MLP, which has none). Returns the
     * MoE routing, or null for a dense layer.
     */
    public Routing feedForward(float[] h, int rows, Runnable alongside) {
        return feedForward(h, rows, alongside, new float[rows * hidden], new float[rows * hidden]);
    }

    /** {@link #attend}, with x and y [rows x hidden] as scratch (both overwritten). */
    private void attend(float[] h, int rows, List<SequenceRows> sequences, float[] x, float[] y) {
        inputNorm.apply(h, x, rows);
        if (external != null) {
            external.forward(index, x, rows, sequences, y);
        } else {
            attention.forward(x, rows, sequences, y);
        }
        add(h, y, rows);
    }

    /** {@link #feedForward}, with x and y [rows x hidden] as scratch (both overwritten). */
    private Routing feedForward(float[] h, int rows, Runnable alongside, float[] x, float[] y) {
        postAttentionNorm.apply(h, x, rows);
        Routing routing = null;
        if (moe != null) {
            routing = moe.forward(x, rows, y, alongside);
        } else {
            mlp.forward(x, y, rows);
        }
        add(h, y, rows);
        if (moe == null && alongside != null) {
            alongside.run();
        }
        return routing;
    }

    /** Weight bytes one token reads in this layer (attention + dense MLP or its active MoE part). */
    public long activeWeightBytes() {
        return attention.storageBytes() + (moe != null ? moe.activeWeightBytes() : mlp.storageBytes());
    }

    /** Weight bytes a step reads in this layer when its rows picked {@code routedExperts} distinct experts. */
    public long weightBytesRead(int routedExperts) {
        return attention.storageBytes() + (moe != null ? moe.weightBytesRead(routedExperts) : mlp.storageBytes());
    }

    /** Multiply-adds of one row through this layer's weights (attention over the cache left out). */
    public long multiplyAdds() {
        return attention.multiplyAdds() + (moe != null ? moe.multiplyAdds() : mlp.multiplyAdds());
    }

    private void add(float[] h, float[] y, int rows) {
        VectorOps.axpy(1f, y, 0, h, 0, rows * hidden);
    }
}
