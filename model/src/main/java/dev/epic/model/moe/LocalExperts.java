package dev.epic.model.moe;

import dev.epic.kernels.Parallel;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mlp;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Set;

/**
 * Routed experts computed in this process, for all MoE layers or a subset of expert ids (an expert
 * worker's shard). Only the hosted experts' tensors are touched, so only their shards get mapped.
 * Rows are grouped by expert and each expert runs one batched pass over its rows; contributions are
 * added in ascending expert id, as DeepSeek's reference does.
 */
public final class LocalExperts implements RoutedExperts {
    /** Which (layer, expert) pairs this process hosts. */
    @FunctionalInterface
    public interface Placement {
        boolean hosts(int layer, int expert);

        static Placement all() {
            return (layer, expert) -> true;
        }

        static Placement experts(Set<Integer> ids) {
            Set<Integer> copy = Set.copyOf(ids);
            return (layer, expert) -> copy.contains(expert);
        }
    }

    private final int hidden;
    private final int experts;
    /** layer -> expert id -> MLP (null where not hosted). */
    private final Map<Integer, Mlp[]> byLayer = new HashMap<>();

    public LocalExperts(ModelConfig c, WeightSource w, Placement placement) {
        this(c, w, placement, java.util.stream.IntStream.range(0, c.numHiddenLayers()).filter(c::isMoeLayer).toArray());
    }

    private LocalExperts(ModelConfig c, WeightSource w, Placement placement, int[] layers) {
        if (c.nRoutedExperts() == null) {
            throw new IllegalArgumentException("model has no routed experts (n_routed_experts is null)");
        }
        this.hidden = c.hiddenSize();
        this.experts = c.nRoutedExperts();
        for (int layer : layers) {
            Mlp[] mlps = new Mlp[experts];
            for (int e = 0; e < experts; e++) {
                if (placement.hosts(layer, e)) {
                    mlps[e] = Mlp.load(w, "model.layers." + layer + ".mlp.experts." + e, hidden,
                            c.moeIntermediateSize());
                }
            }
            byLayer.put(layer, mlps);
        }
    }

    /** All experts of all MoE layers. */
    public static LocalExperts all(ModelConfig c, WeightSource w) {
        return new LocalExperts(c, w, Placement.all());
    }

    /** All experts of one layer (the multi-token-prediction layer's, past the decoder's). */
    public static LocalExperts layer(ModelConfig c, WeightSource w, int layer) {
        return new LocalExperts(c, w, Placement.all(), new int[] {layer});
    }

    /** The given expert ids in every MoE layer. */
    public static LocalExperts subset(ModelConfig c, WeightSource w, Set<Integer> expertIds) {
        return new LocalExperts(c, w, Placement.experts(expertIds));
    }

    /** Storage bytes of one hosted expert of this layer (0 if none is hosted). */
    public long expertBytes(int layer) {
        Mlp m = anyExpert(layer);
        return m != null ? m.storageBytes() : 0;
    }

    /** Multiply-adds of one row through one hosted expert of this layer (0 if none is hosted). */
    public long expertMultiplyAdds(int layer) {
        Mlp m = anyExpert(layer);
        return m != null ? m.multiplyAdds() : 0;
    }

    private Mlp anyExpert(int layer) {
        Mlp[] mlps = byLayer.get(layer);
        if (mlps != null) {
            for (Mlp m : mlps) {
                if (m != null) {
                    return m;
                }
            }
        }
        return null;
    }

    public boolean hosts(int layer, int expert) {
        Mlp[] mlps = byLayer.get(layer);
        return mlps != null && expert >= 0 && expert < experts && mlps[expert] != null;
    }

    /** Every selected expert must be hosted here. */
    @Override
    public void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out) {
        run(layer, x, rows, expertIds, weights, k, out, true);
    }

    /**
     * The partial sum over the hosted experts only (unhosted selections are skipped): what one expert
     * shard contributes; the caller adds the shards' outputs.
     */
    public void forwardHosted(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out) {
        run(layer, x, rows, expertIds, weights, k, out, false);
    }

    /**
     * Each term weight * Expert(x) is rounded to float (as the reference computes it) and the terms are
     * summed in double, which is exact for a handful of floats of similar magnitude: the result is then
     * the same whatever the order or grouping of the experts (in this process, or split over workers,
     * which add their partial sums the same way — see RemoteExperts).
     */
    private void run(int layer, float[] x, int rows, int[] ids, float[] weights, int k, float[] out, boolean strict) {
        double[] sum = new double[rows * hidden];
        Mlp[] mlps = byLayer.get(layer);
        if (mlps == null) {
            throw new IllegalArgumentException("layer " + layer + " is not a MoE layer");
        }
        // Bucket the (row, slot) selections by expert: slots[first[e] .. first[e+1]) are expert e's, in row order.
        int[] first = new int[experts + 1];
        for (int i = 0; i < rows * k; i++) {
            int e = ids[i];
            if (e < 0 || e >= experts) {
                throw new IllegalArgumentException("expert id " + e + " outside [0, " + experts + ")");
            }
            if (mlps[e] == null && strict) {
                throw new IllegalStateException("expert " + e + " of layer " + layer + " is not hosted here");
            }
            first[e + 1]++;
        }
        for (int e = 0; e < experts; e++) {
            first[e + 1] += first[e];
        }
        int[] slots = new int[rows * k];
        int[] fill = Arrays.copyOf(first, experts);
        for (int i = 0; i < rows * k; i++) {
            slots[fill[ids[i]]++] = i;
        }
        int[] active = new int[experts];
        int count = 0;
        long work = 0;
        for (int e = 0; e < experts; e++) {
            int n = first[e + 1] - first[e];
            if (n > 0 && mlps[e] != null) {
                active[count++] = e;
                work += (long) n * mlps[e].multiplyAdds();
            }
        }
        // Each expert's rows go through its MLP as one batch. With enough experts to share out (decode),
        // whole experts run in parallel and their matmuls stay on their thread; otherwise each matmul
        // is parallel by itself. Outputs are then combined (exactly, in double).
        float[][] ys = new float[count][];
        int n = count;
        Parallel.Range body = (a0, a1) -> {
            for (int a = a0; a < a1; a++) {
                int e = active[a];
                int m = first[e + 1] - first[e];
                float[] in = new float[m * hidden];
                for (int j = 0; j < m; j++) {
                    System.arraycopy(x, (slots[first[e] + j] / k) * hidden, in, j * hidden, hidden);
                }
                ys[a] = new float[m * hidden];
                mlps[e].forward(in, ys[a], m);
            }
        };
        if (n >= 2 * Parallel.threads()) {
            Parallel.forRange(n, 1, work, body);
        } else {
            body.run(0, n);
        }
        for (int a = 0; a < n; a++) {
            int e = active[a];
            float[] y = ys[a];
            for (int j = 0; j < first[e + 1] - first[e]; j++) {
                int slot = slots[first[e] + j];
                int row = slot / k;
                float w = weights[slot];
                for (int i = 0; i < hidden; i++) {
                    sum[row * hidden + i] += y[j * hidden + i] * w; // float product, double sum
                }
            }
        }
        for (int i = 0; i < rows * hidden; i++) {
            out[i] = (float) sum[i];
        }
    }
}
