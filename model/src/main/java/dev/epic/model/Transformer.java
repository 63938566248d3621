package dev.epic.model;

import dev.epic.kernels.Matrix;
import dev.epic.model.attention.ExternalAttention;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.DecoderLayer;
import dev.epic.model.layers.Mtp;
import dev.epic.model.layers.RmsNorm;
import dev.epic.model.layers.Rope;
import dev.epic.model.layers.SequenceRows;
import dev.epic.model.layers.Yarn;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.moe.RoutedExperts;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Set;

/**
 * The DeepSeek-V3 decoder in fp32: embedding, {@code num_hidden_layers} blocks, final RMSNorm,
 * lm_head. A step runs any mix of prefill chunks and decode tokens of different sequences together:
 * linears see all rows at once and every MoE layer makes one {@link RoutedExperts#forward} call
 * per step (two with {@link #twoBatchOverlap}, one per micro-batch). The multi-token-prediction
 * layer is not part of inference: it is loaded only to draft tokens for speculative decoding
 * ({@link #enableMtp}).
 *
 * <p>Thread safety: the model holds no per-step state (all buffers are local to a step), so steps
 * over disjoint caches may run concurrently; one cache must not be in two concurrent steps.
 */
public final class Transformer {
    private final ModelConfig config;
    private final Matrix embed;
    private final List<DecoderLayer> layers = new ArrayList<>();
    private final RmsNorm norm;
    private final Matrix lmHead;
    private final ExternalAttention external;
    private final RoutedExperts experts;
    private final WeightSource weights;
    private final Rope rope;
    /** The multi-token-prediction module when drafting with it; its KV is one more cache layer. */
    private volatile Mtp mtp;
    /** How this process's caches store positions; set before serving (attention workers have their own flag). */
    private volatile KvCacheDtype kvCacheDtype = KvCacheDtype.FP32;
    /** Steps run as two overlapped micro-batches where they split ({@link TwoBatchOverlap}). */
    private volatile boolean twoBatchOverlap;

    public Transformer(ModelConfig c, WeightSource w, RoutedExperts experts) {
        this(c, w, experts, null);
    }

    /**
     * @param experts  routed experts (null for a dense model)
     * @param external where attention and the KV caches live; null = in this process
     */
    public Transformer(ModelConfig c, WeightSource w, RoutedExperts experts, ExternalAttention external) {
        this.config = c;
        this.external = external;
        this.experts = experts;
        this.weights = w;
        int hidden = c.hiddenSize();
        this.embed = w.matrix("model.embed_tokens.weight", c.vocabSize(), hidden);
        this.rope = Yarn.rope(c);
        for (int i = 0; i < c.numHiddenLayers(); i++) {
            layers.add(new DecoderLayer(c, w, i, rope, experts, external));
        }
        this.norm = new RmsNorm(w.vector("model.norm.weight", hidden), c.rmsNormEps());
        this.lmHead = c.tieWordEmbeddings() ? embed : w.matrix("lm_head.weight", c.vocabSize(), hidden);
    }

    /** The whole model in this process, all experts local, weights as stored. */
    public static Transformer load(Checkpoint checkpoint) {
        return load(checkpoint, WeightFormat.AUTO);
    }

    /**
     * The whole model in this process with the linear weights in {@code format} (see
     * {@link ConvertedWeights}; a copy made by {@code epic quantize} next to the checkpoint is used).
     */
    public static Transformer load(Checkpoint checkpoint, WeightFormat format) {
        ModelConfig c = checkpoint.config();
        WeightSource w = ConvertedWeights.of(checkpoint, format, checkpoint.directory());
        RoutedExperts experts = c.nRoutedExperts() != null ? LocalExperts.all(c, w) : null;
        Transformer t = new Transformer(c, w, experts);
        if (w instanceof ConvertedWeights cw) {
            cw.logSummary();
        }
        return t;
    }

    /**
     * Bytes of weights one decode step of a single sequence reads: lm_head, every layer's attention
     * and dense MLP or (router gate + shared expert + num_experts_per_tok routed experts), from
     * {@link Matrix#storageBytes}. The embedding row (hidden values) is left out.
     */
    public long weightBytesPerToken() {
        long bytes = lmHead.storageBytes();
        for (DecoderLayer layer : layers) {
            bytes += layer.activeWeightBytes();
        }
        return bytes;
    }

    /**
     * Bytes of weights one step reads when each layer's rows picked {@code routedExperts[layer]}
     * distinct experts (ignored for dense layers): every matrix is read once per step however many
     * rows share it, so at batch B this, not B times {@link #weightBytesPerToken}, is the step's traffic.
     */
    public long weightBytesPerStep(int[] routedExperts) {
        long bytes = lmHead.storageBytes();
        for (int i = 0; i < layers.size(); i++) {
            bytes += layers.get(i).weightBytesRead(routedExperts[i]);
        }
        return bytes;
    }

    /**
     * Multiply-adds of one decoded token through the weights (lm_head, projections, MLPs, gate, shared
     * and k routed experts); the attention over the cache comes on top, so this bounds compute from below.
     */
    public long multiplyAddsPerToken() {
        long m = (long) lmHead.rows() * lmHead.cols();
        for (DecoderLayer layer : layers) {
            m += layer.multiplyAdds();
        }
        return m;
    }

    /** Whether attention and the KV caches live outside this process (on attention workers). */
    public boolean attentionIsExternal() {
        return external != null;
    }

    /** The KV budget of external attention (see {@link ExternalAttention#kvCacheBudget()}); Long.MAX_VALUE in-process. */
    public long externalKvCacheBudget() {
        return external == null ? Long.MAX_VALUE : external.kvCacheBudget();
    }

    /** Prefix caching where external attention keeps its caches (see {@link ExternalAttention#prefixStore}); null in-process or when it has none. */
    public PrefixStore externalPrefixStore(long bytes) {
        return external == null ? null : external.prefixStore(bytes);
    }

    /** Where external attention may place a new cache now (see {@link ExternalAttention#kvPools()}); empty in-process. */
    public List<? extends KvPool> externalKvPools() {
        return external == null ? List.of() : external.kvPools();
    }

    public ModelConfig config() {
        return config;
    }

    /**
     * Loads the checkpoint's multi-token-prediction layer to draft with (see {@link Mtp}); caches made
     * from now on hold its KV as one more layer. Set before serving. With external attention, that
     * layer's attention runs where the caches are, which must hold it ({@link ExternalAttention#holdsMtpLayer});
     * its routed experts run where the decoder's do when those hold it ({@link RoutedExperts#mtpLayer}), else here.
     */
    public Transformer enableMtp() {
        if (external != null && !external.holdsMtpLayer()) {
            throw new IllegalArgumentException("drafting with the MTP layer needs caches that hold it: the attention "
                    + "workers' must be asked for with the MTP layer (RemoteAttention.Options.withMtpLayer)");
        }
        if (mtp == null) {
            mtp = new Mtp(config, weights, rope, embed, lmHead, external, experts);
        }
        return this;
    }

    /** Whether the MTP module reads the main model's embedding and lm_head (one copy of each in memory). */
    public boolean mtpSharesEmbeddingAndHead() {
        return mtp != null && mtp.sharesMainEmbeddingAndHead(embed, lmHead);
    }

    /** The multi-token-prediction module, or null when it does not draft. */
    public Mtp mtp() {
        return mtp;
    }

    /** Layers a sequence's cache holds: the decoder's, and the MTP layer's when it drafts. */
    public int cacheLayers() {
        return config.numHiddenLayers() + (mtp != null ? 1 : 0);
    }

    /** A fresh, empty cache for one sequence (on an attention worker when attention is external). */
    public KvCache newCache() {
        if (external != null) {
            return external.newCache();
        }
        return HeapKvCache.forModel(config, kvCacheDtype, cacheLayers());
    }

    /**
     * Stores the KV caches made from now on in {@code dtype} (--kv-cache-dtype). With external attention
     * the caches store what it stores, and another dtype is refused.
     */
    public Transformer kvCacheDtype(KvCacheDtype dtype) {
        if (external != null && external.kvCacheDtype() != dtype) {
            throw new IllegalArgumentException("the KV caches live on the attention workers, which store "
                    + external.kvCacheDtype().id() + ", not " + dtype.id());
        }
        this.kvCacheDtype = java.util.Objects.requireNonNull(dtype);
        return this;
    }

    /**
     * Runs steps as two micro-batches (between sequences, or within a long chunk where attention runs
     * here), each one's attention alongside the other's routed experts ({@link TwoBatchOverlap}). It can
     * pay only where those experts compute elsewhere; the results are the same bits either way.
     */
    public Transformer twoBatchOverlap(boolean on) {
        this.twoBatchOverlap = on;
        return this;
    }

    public boolean twoBatchOverlap() {
        return twoBatchOverlap;
    }

    public KvCacheDtype kvCacheDtype() {
        return external != null ? external.kvCacheDtype() : kvCacheDtype;
    }

    /** Bytes one position of a sequence's cache takes, every layer: what KV budgets count. */
    public long kvBytesPerPosition() {
        return kvCacheDtype().bytesPerPosition(config, cacheLayers());
    }

    public List<float[]> step(List<SequenceChunk> chunks) {
        return step(chunks, ForwardObserver.NONE);
    }

    /**
     * Runs one step. Returns, per chunk in order, its logits: [vocab] for the last position, or
     * [length x vocab] when the chunk asked for all positions. Each chunk's cache grows to start + length.
     */
    public List<float[]> step(List<SequenceChunk> chunks, ForwardObserver observer) {
        return run(chunks, observer, false).logits();
    }

    /**
     * A step's logits (as {@link #step}) and the final hidden state of every row after the final norm,
     * [rows x hidden] in the chunks' order: what lm_head multiplies, and what the MTP layer reads.
     */
    public record Output(List<float[]> logits, float[] hidden) {}

    /** {@link #step}, keeping every row's normalised final hidden state. */
    public Output stepWithHidden(List<SequenceChunk> chunks) {
        return run(chunks, ForwardObserver.NONE, true);
    }

    private Output run(List<SequenceChunk> chunks, ForwardObserver observer, boolean keepHidden) {
        List<SequenceRows> sequences = plan(chunks);
        int rows = 0;
        for (SequenceChunk ch : chunks) {
            rows += ch.tokens().length;
        }
        int hidden = config.hiddenSize();
        float[] h = new float[rows * hidden];
        int r = 0;
        for (SequenceChunk ch : chunks) {
            for (int token : ch.tokens()) {
                embed.row(token, h, r++ * hidden);
            }
        }
        observer.embeddings(h, rows);
        // A chunk is cut only where attention runs here: attention workers take a cache's positions in order,
        // one segment a layer.
        TwoBatchOverlap.Split split = twoBatchOverlap && observer == ForwardObserver.NONE
                ? TwoBatchOverlap.split(sequences, external == null) : null;
        if (split != null) {
            TwoBatchOverlap.run(layers, h, hidden, split);
        } else {
            for (int i = 0; i < layers.size(); i++) {
                layers.get(i).forward(h, rows, sequences, observer);
                observer.blockOutput(i, h, rows);
            }
        }
        // Final norm and lm_head over the wanted rows of all chunks in one matmul (one pass over lm_head).
        int wanted = 0;
        for (int i = 0; i < chunks.size(); i++) {
            wanted += chunks.get(i).allLogits() ? sequences.get(i).length() : 1;
        }
        float[] x = new float[wanted * hidden];
        float[] normed = null;
        if (keepHidden) {
            normed = new float[rows * hidden];
            norm.apply(h, normed, rows);
        }
        int j = 0;
        for (int i = 0; i < chunks.size(); i++) {
            SequenceRows s = sequences.get(i);
            int n = chunks.get(i).allLogits() ? s.length() : 1;
            int from = (s.firstRow() + s.length() - n) * hidden;
            if (normed != null) {
                System.arraycopy(normed, from, x, j * hidden, n * hidden);
            } else {
                norm.apply(h, hidden, from, x, hidden, j * hidden, n);
            }
            j += n;
        }
        int vocab = config.vocabSize();
        float[] all = new float[wanted * vocab];
        lmHead.matmul(x, all, wanted);
        List<float[]> logits = new ArrayList<>(chunks.size());
        j = 0;
        for (int i = 0; i < chunks.size(); i++) {
            SequenceChunk ch = chunks.get(i);
            int n = ch.allLogits() ? sequences.get(i).length() : 1;
            logits.add(chunks.size() == 1 ? all : Arrays.copyOfRange(all, j * vocab, (j + n) * vocab));
            j += n;
            ch.cache().setLength(ch.start() + ch.tokens().length);
        }
        return new Output(logits, normed);
    }

    /** Validates the chunks and lays their tokens out as consecutive rows. */
    private List<SequenceRows> plan(List<SequenceChunk> chunks) {
        if (chunks.isEmpty()) {
            throw new IllegalArgumentException("a step needs at least one chunk");
        }
        Set<KvCache> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        List<SequenceRows> out = new ArrayList<>(chunks.size());
        int row = 0;
        for (SequenceChunk ch : chunks) {
            int[] tokens = ch.tokens();
            if (tokens == null || tokens.length == 0) {
                throw new IllegalArgumentException("chunk has no tokens");
            }
            if (!seen.add(ch.cache())) {
                throw new IllegalArgumentException("the same KV cache appears in two chunks of one step");
            }
            if (ch.start() < 0 || ch.start() > ch.cache().length()) {
                throw new IllegalArgumentException("chunk starts at position " + ch.start() + " but its cache holds "
                        + ch.cache().length() + " positions (must start at or before the cache's end)");
            }
            long end = (long) ch.start() + tokens.length;
            if (end > config.maxPositionEmbeddings()) {
                throw new IllegalArgumentException("positions " + ch.start() + ".." + (end - 1)
                        + " exceed max_position_embeddings " + config.maxPositionEmbeddings());
            }
            for (int t : tokens) {
                if (t < 0 || t >= config.vocabSize()) {
                    throw new IllegalArgumentException("token id " + t + " outside [0, " + config.vocabSize() + ")");
                }
            }
            out.add(new SequenceRows(ch.cache(), ch.start(), row, tokens.length));
            row += tokens.length;
        }
        return out;
    }

    /** Convenience: one chunk for one sequence; returns the last position's logits. */
    public float[] forward(KvCache cache, int... tokens) {
        return step(List.of(SequenceChunk.next(cache, tokens))).getFirst();
    }
}
