package dev.epic.worker;

import dev.epic.model.WeightSource;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mlp;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import java.lang.foreign.MemorySegment;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * An {@link ExpertShard} over a checkpoint: the hosted experts' SwiGLU MLPs for every MoE layer, and
 * when asked for, for the multi-token-prediction layer after them (for coordinators drafting with it).
 * Only their tensors are opened, so only the shards holding them are mapped, and only their pages
 * are loaded (at start-up, and when redundant experts arrive) and resident.
 */
public final class CheckpointShard implements ExpertShard {
    /**
     * The warm-up's rows per product: the fused GEMV (1-3 rows), and the tiled GEMM's four-row kernel
     * with and without a tail. Measured on the 2-core box: 500 rounds left 1024x256 bf16 and q4 experts
     * as fast as thousands of real products do, at every batch.
     */
    private static final int[] WARMUP_BATCHES = {1, 2, 3, 5, 8, 17, 64};
    private static final int WARMUP_ROUNDS = 500;

    private final Checkpoint checkpoint;
    private final WeightSource weights;
    private final ModelConfig config;
    private final int[] experts;
    /** layer -> expert id -> MLP (null where not hosted or not a MoE layer). */
    private final Mlp[][] own;
    private final long ownBytes;
    /**
     * The redundant experts of the current placement, and of the one before: a coordinator that has
     * not yet seen the new announcement may still send rows for those. Each is replaced whole.
     */
    private volatile Mlp[][] extra;
    private volatile Mlp[][] previous;
    private volatile long extraBytes;
    /**
     * Once it follows placements, any expert a coordinator still routes here by an older placement
     * is loaded on demand (the weights are mapped) rather than refused: a refusal would end the
     * coordinator's stream and take this worker's own experts down with it. Key: layer * experts + id.
     */
    private volatile boolean followsPlacements;
    private final Map<Integer, Mlp> onDemand = new ConcurrentHashMap<>();

    private CheckpointShard(Checkpoint checkpoint, WeightSource weights, int[] experts, Mlp[][] own, long ownBytes) {
        this.checkpoint = checkpoint;
        this.weights = weights;
        this.config = checkpoint.config();
        this.experts = experts;
        this.own = own;
        this.ownBytes = ownBytes;
        this.extra = new Mlp[own.length][];
        this.previous = extra;
    }

    /** Loads the sorted expert ids {@code experts} of every MoE layer, weights as stored. */
    public static CheckpointShard load(Checkpoint checkpoint, int[] experts) {
        return load(checkpoint, experts, WeightFormat.AUTO);
    }

    /** As {@link #load(Checkpoint, int[], WeightFormat)}, without the MTP layer. */
    public static CheckpointShard load(Checkpoint checkpoint, int[] experts, WeightFormat format) {
        return load(checkpoint, experts, format, false);
    }

    /**
     * Loads the sorted expert ids {@code experts} of every MoE layer with their weights in
     * {@code format} (see {@link ConvertedWeights}: a copy written by {@code epic quantize} is mapped,
     * otherwise only these experts are converted at load), and with {@code mtpLayer} the same ids of the
     * checkpoint's multi-token-prediction layer (layer {@code num_hidden_layers}).
     */
    public static CheckpointShard load(Checkpoint checkpoint, int[] experts, WeightFormat format, boolean mtpLayer) {
        ModelConfig c = checkpoint.config();
        if (c.nRoutedExperts() == null) {
            throw new IllegalArgumentException(checkpoint.directory() + " is a dense model (no n_routed_experts)");
        }
        String noMtp = mtpLayer ? mtpLayerMissing(c) : null;
        if (noMtp != null) {
            throw new IllegalArgumentException(checkpoint.directory() + ": " + noMtp);
        }
        WeightSource weights = ConvertedWeights.of(checkpoint, format, checkpoint.directory());
        int n = c.nRoutedExperts();
        int layers = c.numHiddenLayers() + (mtpLayer ? 1 : 0);
        Mlp[][] mlps = new Mlp[layers][];
        long bytes = 0;
        for (int layer = 0; layer < layers; layer++) {
            if (!c.isMoeLayer(layer)) {
                continue;
            }
            mlps[layer] = new Mlp[n];
            for (int e : experts) {
                if (e < 0 || e >= n) {
                    throw new IllegalArgumentException("expert " + e + " outside [0, " + n + ") of " + checkpoint.directory());
                }
                mlps[layer][e] = expert(weights, c, layer, e);
                bytes += resident(checkpoint, weights, layer, e, mlps[layer][e]);
            }
        }
        return new CheckpointShard(checkpoint, weights, experts.clone(), mlps, bytes);
    }

    /**
     * Why a checkpoint has no MTP-layer experts to host (no multi-token-prediction layer, or a dense
     * one), or null when it has: checked before anything loads.
     */
    public static String mtpLayerMissing(ModelConfig c) {
        String none = dev.epic.model.layers.Mtp.missing(c); // the drafter's own check, one message for both
        if (none != null) {
            return none;
        }
        return c.isMoeLayer(c.numHiddenLayers()) ? null : "its multi-token-prediction layer has no routed experts";
    }

    private static Mlp expert(WeightSource weights, ModelConfig c, int layer, int expert) {
        return Mlp.load(weights, prefix(layer, expert), c.hiddenSize(), c.moeIntermediateSize());
    }

    private static String prefix(int layer, int expert) {
        return "model.layers." + layer + ".mlp.experts." + expert;
    }

    /** The expert's bytes, paged in now when it is read from the checkpoint's mapped files. */
    private static long resident(Checkpoint checkpoint, WeightSource weights, int layer, int e, Mlp mlp) {
        if (weights != checkpoint) {
            return mlp.storageBytes(); // converted: in memory or a mapped epic-q* file
        }
        long bytes = 0;
        for (String proj : new String[] {"gate_proj", "up_proj", "down_proj"}) {
            String name = prefix(layer, e) + "." + proj + ".weight";
            bytes += prefault(checkpoint, name);
            if (checkpoint.contains(name + "_scale_inv")) {
                bytes += prefault(checkpoint, name + "_scale_inv");
            }
        }
        return bytes;
    }

    /**
     * Pages the tensor in now, so the worker announces experts only with their weights resident (the
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
        return config.hiddenSize();
    }

    @Override
    public int expertCount() {
        return config.nRoutedExperts();
    }

    @Override
    public int[] experts() {
        return experts.clone();
    }

    @Override
    public boolean hostsMtpLayer() {
        return own.length > config.numHiddenLayers();
    }

    @Override
    public boolean isMoeLayer(int layer) {
        return layer >= 0 && layer < own.length && own[layer] != null;
    }

    @Override
    public boolean hosts(int layer, int expert) {
        return followsPlacements ? isMoeLayer(layer) && expert >= 0 && expert < expertCount()
                : mlp(layer, expert) != null;
    }

    private Mlp mlp(int layer, int expert) {
        if (!isMoeLayer(layer) || expert < 0 || expert >= own[layer].length) {
            return null;
        }
        Mlp m = own[layer][expert];
        if (m == null) {
            m = at(extra, layer, expert);
        }
        return m != null ? m : at(previous, layer, expert);
    }

    private static Mlp at(Mlp[][] table, int layer, int expert) {
        Mlp[] l = table[layer];
        return l != null ? l[expert] : null;
    }

    @Override
    public void apply(int layer, int expert, float[] x, int batch, float[] y) {
        Mlp m = mlp(layer, expert);
        if (m == null && followsPlacements) {
            m = onDemand.computeIfAbsent(layer * expertCount() + expert,
                    k -> expert(weights, config, layer, expert));
        }
        if (m == null) {
            throw new IllegalArgumentException("expert " + expert + " of layer " + layer + " is not hosted here");
        }
        m.forward(x, y, batch);
    }

    /**
     * Runs one hosted expert's kernels at every batch shape they distinguish (see {@link Mlp#warmUp});
     * the other experts share its format and widths, and so its compiled code.
     */
    @Override
    public int warmUp() {
        for (Mlp[] layer : own) {
            if (layer != null && experts.length > 0) {
                return layer[experts[0]].warmUp(WARMUP_BATCHES, WARMUP_ROUNDS);
            }
        }
        return 0;
    }

    /**
     * Loads the experts new to this placement (one kept from the last two is reused), then swaps; the
     * last placement's experts stay until the next change, and any other expert a coordinator still
     * routes here is loaded on demand.
     */
    @Override
    public synchronized void redundant(Map<Integer, int[]> extras) {
        Mlp[][] old = extra;
        Mlp[][] next = new Mlp[own.length][];
        long bytes = 0;
        for (var entry : extras.entrySet()) {
            int layer = entry.getKey();
            if (!isMoeLayer(layer)) {
                throw new IllegalArgumentException("layer " + layer + " is not a MoE layer of this model");
            }
            for (int e : entry.getValue()) {
                if (e < 0 || e >= expertCount()) {
                    throw new IllegalArgumentException("expert " + e + " outside [0, " + expertCount() + ")");
                }
                if (own[layer][e] != null) {
                    continue; // hosted already
                }
                if (next[layer] == null) {
                    next[layer] = new Mlp[expertCount()];
                }
                Mlp kept = at(old, layer, e);
                kept = kept != null ? kept : at(previous, layer, e);
                next[layer][e] = kept != null ? kept
                        : expert(weights, config, layer, e);
                bytes += kept != null ? kept.storageBytes() : resident(checkpoint, weights, layer, e, next[layer][e]);
            }
        }
        previous = old; // before extra: a reader never misses an expert of either placement
        extra = next;
        extraBytes = bytes;
        followsPlacements = true;
        onDemand.clear(); // stragglers of older placements: loaded again if still asked for

    }

    @Override
    public long residentBytes() {
        return ownBytes + extraBytes;
    }
}
