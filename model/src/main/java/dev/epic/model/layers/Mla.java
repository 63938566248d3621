package dev.epic.model.layers;

import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import dev.epic.kernels.Parallel;
import dev.epic.kernels.VectorOps;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * Multi-head Latent Attention (DeepSeek-V2/V3). Decoding uses the absorbed form:
 * <pre>
 *   q            = q_b_proj(RMSNorm_qa(q_a_proj(x)))  (or q_proj(x))  -> per head [q_nope | q_pe]
 *   [c | k_pe]   = kv_a_proj_with_mqa(x);  c = RMSNorm_kva(c);  k_pe = rope(k_pe)     (cached)
 *   kv_b_proj    = per head [W_k (qk_nope x rank) ; W_v (v_head x rank)]
 *   score_t      = ((W_k^T q_nope) . c_t + rope(q_pe) . k_pe_t) * softmax_scale,  t <= pos
 *   o_head       = W_v (sum_t softmax(score)_t c_t)
 *   out          = o_proj([o_head for all heads])
 * </pre>
 * W_k^T q_nope equals q_nope . k_nope_t for k_nope_t = W_k c_t, so per-head keys and values are not
 * built; the cache holds only c and k_pe, and attention reads it in place. Each (row, head) pair is
 * independent, so they run in parallel on the kernel pool. Long prefill chunks use the original,
 * expanded form instead (k_nope | v = kv_b_proj(c_t), then softmax(Q K^T) V per head), where that
 * needs fewer multiply-adds (see {@link #expanded}).
 */
public final class Mla {
    private final int heads;
    private final int nope;
    private final int ropeDim;
    private final int vDim;
    private final int rank;
    private final int layer;
    private final float softmaxScale;
    private final Rope rope;

    private final Matrix qA;      // null without q_lora
    private final RmsNorm qANorm; // null without q_lora
    private final Matrix qB;      // q_b_proj, or q_proj without q_lora
    private final Matrix kvA;
    private final RmsNorm kvANorm;
    /**
     * kv_b_proj widened to fp32 on the heap, [heads x (nope + v)] rows of rank floats: the absorbed form
     * uses it per head, transposed for keys (W_k^T q) and by rows for values. It is small (V3: 128 x 256
     * x 512 floats = 64 MiB per layer, 3.9 GB for 61 layers) next to the layer's other weights.
     */
    private final float[] kvBWide;
    private final Matrix kvB;     // as stored/converted, for the expanded form's GEMM
    private final Matrix o;
    private final Form form;

    /** Which attention form to use; AUTO picks per sequence by cost. Set with -Depic.mla.form (tests, benchmarks). */
    public enum Form { AUTO, ABSORBED, EXPANDED }

    public Mla(ModelConfig c, WeightSource w, int layer, Rope rope) {
        String p = "model.layers." + layer + ".self_attn.";
        this.layer = layer;
        this.heads = c.numAttentionHeads();
        this.nope = c.qkNopeHeadDim();
        this.ropeDim = c.qkRopeHeadDim();
        this.vDim = c.vHeadDim();
        this.rank = c.kvLoraRank();
        this.softmaxScale = Yarn.softmaxScale(c);
        this.rope = rope;
        int hidden = c.hiddenSize();
        int qOut = heads * c.qkHeadDim();
        if (c.qLoraRank() != null) {
            qA = w.matrix(p + "q_a_proj.weight", c.qLoraRank(), hidden);
            qANorm = new RmsNorm(w.vector(p + "q_a_layernorm.weight", c.qLoraRank()), c.rmsNormEps());
            qB = w.matrix(p + "q_b_proj.weight", qOut, c.qLoraRank());
        } else {
            qA = null;
            qANorm = null;
            qB = w.matrix(p + "q_proj.weight", qOut, hidden);
        }
        kvA = w.matrix(p + "kv_a_proj_with_mqa.weight", rank + ropeDim, hidden);
        kvANorm = new RmsNorm(w.vector(p + "kv_a_layernorm.weight", rank), c.rmsNormEps());
        form = Form.valueOf(System.getProperty("epic.mla.form", "AUTO").toUpperCase(java.util.Locale.ROOT));
        kvB = w.matrix(p + "kv_b_proj.weight", heads * (nope + vDim), rank);
        kvBWide = new float[heads * (nope + vDim) * rank];
        for (int i = 0; i < kvB.rows(); i++) {
            kvB.row(i, kvBWide, i * rank);
        }
        o = w.matrix(p + "o_proj.weight", hidden, heads * vDim);
    }

    /** Weight bytes one token reads: the projections plus the widened kv_b_proj. */
    public long storageBytes() {
        long b = qB.storageBytes() + kvA.storageBytes() + o.storageBytes() + 4L * kvBWide.length;
        return qA != null ? b + qA.storageBytes() : b;
    }

    /** out[rows x hidden] = MLA(x) for all rows of the step; writes each sequence's new positions to its cache. */
    public void forward(float[] x, int rows, List<SequenceRows> sequences, float[] out) {
        int qkDim = nope + ropeDim;
        float[] q = new float[rows * heads * qkDim];
        if (qA != null) {
            float[] qLatent = new float[rows * qA.rows()];
            qA.matmul(x, qLatent, rows);
            qANorm.apply(qLatent, qLatent, rows);
            qB.matmul(qLatent, q, rows);
        } else {
            qB.matmul(x, q, rows);
        }

        int kvWidth = rank + ropeDim;
        float[] kv = new float[rows * kvWidth];
        kvA.matmul(x, kv, rows);
        kvANorm.apply(kv, kvWidth, 0, kv, kvWidth, 0, rows); // c <- RMSNorm(c); k_pe untouched

        for (SequenceRows s : sequences) {
            for (int r = s.firstRow(); r < s.firstRow() + s.length(); r++) {
                int pos = s.position(r);
                float[] angles = rope.angles(pos);
                rope.apply(kv, r * kvWidth + rank, angles);
                for (int h = 0; h < heads; h++) {
                    rope.apply(q, (r * heads + h) * qkDim + nope, angles);
                }
                s.cache().write(layer, pos, kv, r * kvWidth, kv, r * kvWidth + rank);
            }
        }

        float[] attn = new float[rows * heads * vDim];
        List<SequenceRows> absorbed = new ArrayList<>();
        for (SequenceRows s : sequences) {
            if (expanded(s)) {
                attendExpanded(s, q, attn);
            } else {
                absorbed.add(s);
            }
        }
        AttentionRows ar = AttentionRows.of(absorbed, rows, layer, rank, ropeDim);
        long work = (long) heads * (ar.visibleTotal() * (2L * rank + ropeDim) + (long) rows * (nope + vDim) * rank);
        Parallel.forRange(rows * heads, 1, work, (u0, u1) -> {
            float[] scratch = new float[2 * rank + ar.maxVisible()];
            for (int u = u0; u < u1; u++) {
                if (ar.latents()[u / heads] != null) {
                    attendHead(u / heads, u % heads, q, ar, attn, scratch);
                }
            }
        });
        o.matmul(attn, out, rows);
    }

    /**
     * Whether this sequence's rows attend in the expanded form: per-head keys and values built with
     * kv_b_proj for all its positions, then two GEMMs per head. It costs end x kv_b_proj plus
     * L x end x (qk + v) per head, against L x kv_b_proj plus sum(visible) x (2 rank + rope) per head
     * for the absorbed form: long prefill chunks go expanded, decode rows absorbed.
     */
    private boolean expanded(SequenceRows s) {
        if (form != Form.AUTO) {
            return form == Form.EXPANDED;
        }
        long end = s.start() + s.length();
        long len = s.length();
        long kvBCost = (long) heads * (nope + vDim) * rank;
        long visible = len * s.start() + len * (len + 1) / 2;
        long absorbedCost = len * kvBCost + visible * heads * (2L * rank + ropeDim);
        long expandedCost = end * kvBCost + len * end * heads * (nope + ropeDim + vDim);
        return expandedCost < absorbedCost;
    }

    /**
     * The paper's form for one sequence: k_nope | v = kv_b_proj(c_t) for every position t < end, then
     * per head S = Q K^T (K = [k_nope | k_pe]), causal softmax(S * scale), O = P V. Both products are
     * Matrix matmuls over all rows, so they run on the tiled, parallel GEMM (the causal upper triangle
     * is computed and masked: simpler, and cheaper than the absorbed form's 3x wider dot products).
     */
    private void attendExpanded(SequenceRows s, float[] q, float[] attn) {
        int qkDim = nope + ropeDim;
        int end = s.start() + s.length();
        int len = s.length();
        float[] lat = s.cache().latents(layer, end, rank, ropeDim);
        float[] kPe = s.cache().ropeKeys(layer, end, rank, ropeDim);
        float[] kv = new float[end * heads * (nope + vDim)];
        kvB.matmul(lat, kv, end);
        float[] keys = new float[end * qkDim];
        float[] valuesT = new float[vDim * end];
        float[] queries = new float[len * qkDim];
        float[] scores = new float[len * end];
        float[] out = new float[len * vDim];
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < end; t++) {
                int src = (t * heads + h) * (nope + vDim);
                System.arraycopy(kv, src, keys, t * qkDim, nope);
                System.arraycopy(kPe, t * ropeDim, keys, t * qkDim + nope, ropeDim);
                for (int j = 0; j < vDim; j++) {
                    valuesT[j * end + t] = kv[src + nope + j];
                }
            }
            for (int i = 0; i < len; i++) {
                System.arraycopy(q, ((s.firstRow() + i) * heads + h) * qkDim, queries, i * qkDim, qkDim);
            }
            Matrices.f32(keys, end, qkDim).matmul(queries, scores, len);
            for (int i = 0; i < len; i++) {
                int visible = s.start() + i + 1;
                VectorOps.scale(scores, i * end, visible, softmaxScale);
                VectorOps.softmax(scores, i * end, visible);
                Arrays.fill(scores, i * end + visible, (i + 1) * end, 0f);
            }
            Matrices.f32(valuesT, vDim, end).matmul(scores, out, len);
            for (int i = 0; i < len; i++) {
                System.arraycopy(out, i * vDim, attn, ((s.firstRow() + i) * heads + h) * vDim, vDim);
            }
        }
    }

    /**
     * One query row and one head, in latent space: qLat = W_k^T q_nope, causal softmax over the cached
     * positions of (qLat . c_t + q_pe . k_pe_t) * scale, ctx = sum_t p_t c_t, o_head = W_v ctx.
     * scratch holds qLat [rank], ctx [rank] and the scores.
     */
    private void attendHead(int r, int h, float[] q, AttentionRows ar, float[] attn, float[] scratch) {
        int qkDim = nope + ropeDim;
        int qNope = (r * heads + h) * qkDim;
        int qPe = qNope + nope;
        int wk = h * (nope + vDim) * rank; // W_k[h] rows in kvB, then W_v[h] rows
        int wv = wk + nope * rank;
        int qLat = 0;
        int ctx = rank;
        int p = 2 * rank;
        Arrays.fill(scratch, 0, 2 * rank, 0f);
        for (int d = 0; d < nope; d++) {
            VectorOps.axpy(q[qNope + d], kvBWide, wk + d * rank, scratch, qLat, rank);
        }
        float[] lat = ar.latents()[r];
        float[] kPe = ar.ropeKeys()[r];
        int visible = ar.visible()[r];
        for (int t = 0; t < visible; t++) {
            float dotC = VectorOps.dot(scratch, qLat, lat, t * rank, rank);
            float dotPe = VectorOps.dot(q, qPe, kPe, t * ropeDim, ropeDim);
            scratch[p + t] = (dotC + dotPe) * softmaxScale;
        }
        VectorOps.softmax(scratch, p, visible);
        for (int t = 0; t < visible; t++) {
            VectorOps.axpy(scratch[p + t], lat, t * rank, scratch, ctx, rank);
        }
        int out = (r * heads + h) * vDim;
        for (int j = 0; j < vDim; j++) {
            attn[out + j] = VectorOps.dot(kvBWide, wv + j * rank, scratch, ctx, rank);
        }
    }

    /** Per step row: its sequence's cached latents and rope keys (read in place) and how many positions it sees. */
    private record AttentionRows(float[][] latents, float[][] ropeKeys, int[] visible, long visibleTotal,
            int maxVisible) {
        static AttentionRows of(List<SequenceRows> sequences, int rows, int layer, int rank, int rope) {
            float[][] lat = new float[rows][];
            float[][] pe = new float[rows][];
            int[] visible = new int[rows];
            long total = 0;
            int max = 0;
            for (SequenceRows s : sequences) {
                int end = s.start() + s.length();
                float[] l = s.cache().latents(layer, end, rank, rope);
                float[] k = s.cache().ropeKeys(layer, end, rank, rope);
                for (int r = s.firstRow(); r < s.firstRow() + s.length(); r++) {
                    lat[r] = l;
                    pe[r] = k;
                    visible[r] = s.position(r) + 1;
                    total += visible[r];
                    max = Math.max(max, visible[r]);
                }
            }
            return new AttentionRows(lat, pe, visible, total, max);
        }
    }
}
