package dev.epic.model.layers;

import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.moe.RoutedExperts;

/**
 * DeepSeekMoE block: {@code out = sum_j w_j Expert_{e_j}(x) + SharedExpert(x)}. The gate and the
 * shared expert run here; the routed experts run wherever {@link RoutedExperts} puts them, in one
 * call for all rows of the step.
 */
public final class Moe {
    private final int layer;
    private final MoeGate gate;
    private final Mlp shared; // null without shared experts
    private final RoutedExperts experts;
    private final int k;

    public Moe(ModelConfig c, WeightSource w, int layer, RoutedExperts experts) {
        this.layer = layer;
        this.gate = new MoeGate(c, w, layer);
        this.shared = c.nSharedExperts() > 0
                ? Mlp.load(w, "model.layers." + layer + ".mlp.shared_experts", c.hiddenSize(),
                        c.nSharedExperts() * c.moeIntermediateSize())
                : null;
        this.experts = experts;
        this.k = c.numExpertsPerTok();
    }

    /** Gate + shared expert + k routed experts (their size as hosted here; 0 if the experts are remote). */
    public long activeWeightBytes() {
        return weightBytesRead(k);
    }

    /**
     * Weight bytes a step reads when its rows picked {@code routedExperts} distinct experts: gate,
     * shared expert and each of those experts once (as hosted here; 0 for remote experts).
     */
    public long weightBytesRead(int routedExperts) {
        long b = gate.storageBytes() + (shared != null ? shared.storageBytes() : 0);
        if (experts instanceof LocalExperts local) {
            b += (long) routedExperts * local.expertBytes(layer);
        }
        return b;
    }

    /** Multiply-adds of one row: gate, shared expert and its k routed experts (each the size of an expert hosted here). */
    public long multiplyAdds() {
        long m = gate.multiplyAdds() + (shared != null ? shared.multiplyAdds() : 0);
        if (experts instanceof LocalExperts local) {
            m += (long) k * local.expertMultiplyAdds(layer);
        }
        return m;
    }

    /** out[rows x hidden] = MoE(x); returns the routing decision. */
    public Routing forward(float[] x, int rows, float[] out) {
        return forward(x, rows, out, null);
    }

    /**
     * {@link #forward(float[], int, float[])}, running {@code alongside} (may be null) on this thread
     * while the routed experts compute, after the shared expert.
     */
    public Routing forward(float[] x, int rows, float[] out, Runnable alongside) {
        Routing routing = gate.route(x, rows);
        if (shared == null) {
            if (alongside == null) {
                experts.forward(layer, x, rows, routing.experts(), routing.weights(), routing.k(), out);
            } else {
                experts.forward(layer, x, rows, routing.experts(), routing.weights(), routing.k(), out, alongside);
            }
            return routing;
        }
        // The shared expert runs while remote experts compute; its sum is added after, as before.
        float[] z = new float[out.length];
        experts.forward(layer, x, rows, routing.experts(), routing.weights(), routing.k(), out, () -> {
            shared.forward(x, z, rows);
            if (alongside != null) {
                alongside.run();
            }
        });
        for (int i = 0; i < rows * shared.hidden(); i++) {
            out[i] += z[i];
        }
        return routing;
    }
}
