package dev.epic.worker;

import dev.epic.model.WeightSource;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mlp;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import java.lang.foreign.MemorySegment;

/**
 * An {@link ExpertShard} over a checkpoint: the hosted experts' SwiGLU MLPs for every MoE layer.
 * Only their tensors are opened, so only the shards holding them are mapped, and only their pages
 * are loaded (at start-up) and resident.
 */
public final class CheckpointShard implements ExpertShard {
    private final int hidden;
    private final int[] experts;
    /** layer -> expert id -> MLP (null where not hosted or not a MoE layer). */
    private final Mlp[][] mlps;
    private final long residentBytes;

    private CheckpointShard(int hidden, int[] experts, Mlp[][] mlps, long residentBytes) {
        this.hidden = hidden;
        this.experts = experts;
        this.mlps = mlps;
        this.residentBytes = residentBytes;
    }

    /** Loads the sorted expert ids {@code experts} of every MoE layer, weights as stored. */
    public static CheckpointShard load(Checkpoint checkpoint, int[] experts) {
        return load(checkpoint, experts, WeightFormat.AUTO);
    }

    /**
     * Loads the sorted expert ids {@code experts} of every MoE layer with their weights in
     * {@code format} (see {@link ConvertedWeights}: a copy written by {@code epic quantize} is mapped,
     * otherwise only these experts are converted at load).
     */
    public static CheckpointShard load(Checkpoint checkpoint, int[] experts, WeightFormat format) {
        WeightSource weights = ConvertedWeights.of(checkpoint, format, checkpoint.directory());
        ModelConfig c = checkpoint.config();
        if (c.nRoutedExperts() == null) {
            throw new IllegalArgumentException(checkpoint.directory() + " is a dense model (no n_routed_experts)");
        }
        int n = c.nRoutedExperts();
        Mlp[][] mlps = new Mlp[c.numHiddenLayers()][];
        long bytes = 0;
        for (int layer = 0; layer < c.numHiddenLayers(); layer++) {
            if (!c.isMoeLayer(layer)) {
                continue;
            }
            mlps[layer] = new Mlp[n];
            for (int e : experts) {
                if (e < 0 || e >= n) {
                    throw new IllegalArgumentException("expert " + e + " outside [0, " + n + ") of " + checkpoint.directory());
                }
                String prefix = "model.layers." + layer + ".mlp.experts." + e;
                mlps[layer][e] = Mlp.load(weights, prefix, c.hiddenSize(), c.moeIntermediateSize());
                if (weights != checkpoint) {
                    bytes += mlps[layer][e].storageBytes(); // converted: in memory or a mapped epic-q* file
                    continue;
                }
                for (String proj : new String[] {"gate_proj", "up_proj", "down_proj"}) {
                    String name = prefix + "." + proj + ".weight";
                    bytes += prefault(checkpoint, name);
                    if (checkpoint.contains(name + "_scale_inv")) {
                        bytes += prefault(checkpoint, name + "_scale_inv");
                    }
                }
            }
        }
        return new CheckpointShard(c.hiddenSize(), experts.clone(), mlps, bytes);
    }

    /**
     * Pages the tensor in now, so the worker announces itself only with its weights resident (the
     * first requests would otherwise page-fault through the checkpoint and could miss deadlines),
     * and so the process's resident size shows its share of the model.
     */
    private static long prefault(Checkpoint checkpoint, String name) {
        MemorySegment s = checkpoint.segment(name);
        if (s.isMapped()) {
            s.load();
        }
        return s.byteSize();
    }

    @Override
    public int hiddenSize() {
        return hidden;
    }

    @Override
    public int[] experts() {
        return experts.clone();
    }

    @Override
    public boolean isMoeLayer(int layer) {
        return layer >= 0 && layer < mlps.length && mlps[layer] != null;
    }

    @Override
    public void apply(int layer, int expert, float[] x, int batch, float[] y) {
        mlps[layer][expert].forward(x, y, batch);
    }

    @Override
    public long residentBytes() {
        return residentBytes;
    }
}
