package dev.epic.model.layers;

import dev.epic.kernels.Matrix;
import dev.epic.model.ForwardObserver;
import dev.epic.model.KvCache;
import dev.epic.model.WeightSource;
import dev.epic.model.attention.ExternalAttention;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.moe.RoutedExperts;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Supplier;

/**
 * DeepSeek-V3's multi-token-prediction module (checkpoint layer {@code num_hidden_layers}, the paper's
 * section 2.2), used to draft one token ahead. At position i it combines the main model's final
 * hidden state h_i (after the final norm, the vector lm_head multiplies) with the embedding of the
 * token at i+1, and predicts the token at i+2:
 *
 * <pre>
 *   x_i      = eh_proj [ enorm(Emb(t_{i+1})) ; hnorm(h_i) ]      (embedding half first, as vLLM and SGLang)
 *   x_i      = Block(x_i)                                        (MLA + MoE, its own KV cache layer)
 *   logits_i = head(shared_head.norm(x_i))
 * </pre>
 *
 * Its KV lives in the sequence's cache as one more layer, index {@link #layer()}, wherever the cache
 * lives (an attention worker runs its attention then); its routed experts run where the main model's
 * do when those hold the layer (expert workers started with it), else in this process. To
 * draft further it takes its own output x_i in place of h_i at position i+1, with the token it
 * drafted (the paper's next depth, as vLLM chains it).
 */
public final class Mtp {
    /**
     * One sequence's rows: positions start.. with the hidden states {@code hidden[hiddenRow..]} (the main
     * model's, or this module's own output when chaining) and the tokens after them.
     */
    public record Chunk(KvCache cache, int start, int[] nextTokens, float[] hidden, int hiddenRow, boolean logits) {}

    /** A chunk's last row: its logits (the token two past it) and the block's output x, which a chained step reads. */
    public record Draft(float[] logits, float[] hidden) {}

    private final int layer;
    private final int hidden;
    private final int vocab;
    private final Matrix embed;
    private final RmsNorm enorm;
    private final RmsNorm hnorm;
    private final Matrix ehProj;
    private final DecoderLayer block;
    private final RmsNorm headNorm;
    private final Matrix head;

    /**
     * @param mainEmbed the main model's embedding, and {@code mainHead} its lm_head: taken in place of the
     *                  module's own copies when those hold the same bytes (as in DeepSeek's checkpoints), so
     *                  they are mapped and converted once (for the full model 2 x 1.85 GB of bf16)
     */
    public Mtp(ModelConfig c, WeightSource w, Rope rope, Matrix mainEmbed, Matrix mainHead) {
        this(c, w, rope, mainEmbed, mainHead, null, null);
    }

    /**
     * As above, with its attention run by {@code external} where the sequences' caches live (null: here),
     * and its routed experts by {@code mainExperts}, the main model's, where those hold the layer
     * ({@link RoutedExperts#mtpLayer}; null: in this process).
     */
    public Mtp(ModelConfig c, WeightSource w, Rope rope, Matrix mainEmbed, Matrix mainHead, ExternalAttention external,
            RoutedExperts mainExperts) {
        if (missing(c) != null) {
            throw new IllegalArgumentException(missing(c));
        }
        this.layer = c.numHiddenLayers();
        this.hidden = c.hiddenSize();
        this.vocab = c.vocabSize();
        String p = "model.layers." + layer + ".";
        this.embed = same(w, p + "embed_tokens.weight", "model.embed_tokens.weight") ? mainEmbed
                : w.matrix(p + "embed_tokens.weight", vocab, hidden);
        this.enorm = new RmsNorm(w.vector(p + "enorm.weight", hidden), c.rmsNormEps());
        this.hnorm = new RmsNorm(w.vector(p + "hnorm.weight", hidden), c.rmsNormEps());
        this.ehProj = w.matrix(p + "eh_proj.weight", hidden, 2 * hidden);
        Supplier<RoutedExperts> own = () -> LocalExperts.layer(c, w, layer);
        RoutedExperts experts = !c.isMoeLayer(layer) ? null
                : mainExperts != null ? mainExperts.mtpLayer(layer, own) : own.get();
        this.block = new DecoderLayer(c, w, layer, rope, experts, external);
        this.headNorm = new RmsNorm(w.vector(p + "shared_head.norm.weight", hidden), c.rmsNormEps());
        this.head = same(w, p + "shared_head.head.weight", "lm_head.weight") ? mainHead
                : w.matrix(p + "shared_head.head.weight", vocab, hidden);
    }

    /** Whether the module's tensor {@code own} is the main model's {@code main}, block scales included. */
    private static boolean same(WeightSource w, String own, String main) {
        String scale = "_scale_inv";
        return w.sameTensor(own, main) && (!w.contains(own + scale) && !w.contains(main + scale)
                || w.sameTensor(own + scale, main + scale));
    }

    /** Whether it shares the main model's embedding and lm_head (one copy of each in memory). */
    public boolean sharesMainEmbeddingAndHead(Matrix mainEmbed, Matrix mainHead) {
        return embed == mainEmbed && head == mainHead;
    }

    /** Why a model cannot draft with its MTP layer (it has none), or null when it can: checked before anything starts. */
    public static String missing(ModelConfig c) {
        return c.numNextnPredictLayers() < 1
                ? "the checkpoint has no multi-token-prediction layer (num_nextn_predict_layers is 0)" : null;
    }

    /** The cache layer its KV takes: one past the decoder's. */
    public int layer() {
        return layer;
    }

    /**
     * Runs the module over every chunk's rows, writing their positions to its cache layer, and returns
     * per chunk its last row's {@link Draft}, or null where logits were not asked.
     */
    public List<Draft> step(List<Chunk> chunks) {
        int rows = 0;
        for (Chunk ch : chunks) {
            rows += ch.nextTokens().length;
        }
        float[] in = new float[rows * 2 * hidden];
        float[] e = new float[hidden];
        List<SequenceRows> sequences = new ArrayList<>(chunks.size());
        int r = 0;
        for (Chunk ch : chunks) {
            sequences.add(new SequenceRows(ch.cache(), ch.start(), r, ch.nextTokens().length));
            for (int j = 0; j < ch.nextTokens().length; j++, r++) {
                embed.row(ch.nextTokens()[j], e, 0);
                enorm.apply(e, hidden, 0, in, 2 * hidden, r * 2 * hidden, 1);
                hnorm.apply(ch.hidden(), hidden, (ch.hiddenRow() + j) * hidden, in, 2 * hidden, r * 2 * hidden + hidden, 1);
            }
        }
        float[] x = new float[rows * hidden];
        ehProj.matmul(in, x, rows);
        block.forward(x, rows, sequences, ForwardObserver.NONE);
        int wanted = 0;
        for (Chunk ch : chunks) {
            wanted += ch.logits() ? 1 : 0;
        }
        List<Draft> out = new ArrayList<>(chunks.size());
        if (wanted == 0) {
            chunks.forEach(ch -> out.add(null));
            return out;
        }
        float[] last = new float[wanted * hidden];
        int j = 0;
        for (int i = 0; i < chunks.size(); i++) {
            SequenceRows s = sequences.get(i);
            if (chunks.get(i).logits()) {
                headNorm.apply(x, hidden, (s.firstRow() + s.length() - 1) * hidden, last, hidden, j++ * hidden, 1);
            }
        }
        float[] logits = new float[wanted * vocab];
        head.matmul(last, logits, wanted);
        j = 0;
        for (int i = 0; i < chunks.size(); i++) {
            if (!chunks.get(i).logits()) {
                out.add(null);
                continue;
            }
            int row = sequences.get(i).firstRow() + sequences.get(i).length() - 1;
            out.add(new Draft(Arrays.copyOfRange(logits, j * vocab, (j + 1) * vocab),
                    Arrays.copyOfRange(x, row * hidden, (row + 1) * hidden)));
            j++;
        }
        return out;
    }
}
