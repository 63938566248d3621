package dev.epic.model.layers;

import dev.epic.kernels.Matrix;
import dev.epic.model.KvCache;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import java.util.List;

/**
 * Multi-head Latent Attention (DeepSeek-V2/V3), in the absorbed form used for decoding.
 * <pre>
 *   q            = q_b_proj(RMSNorm_qa(q_a_proj(x)))  (or q_proj(x))  -> per head [q_nope | q_pe]
 *   [c | k_pe]   = kv_a_proj_with_mqa(x);  c = RMSNorm_kva(c);  k_pe = rope(k_pe)     (cached)
 *   kv_b_proj    = per head [W_k (qk_nope x rank) ; W_v (v_head x rank)]
 *   score_t      = ((W_k^T q_nope) . c_t + rope(q_pe) . k_pe_t) * softmax_scale,  t <= pos
 *   o_head       = W_v (sum_t softmax(score)_t c_t)
 *   out          = o_proj([o_head for all heads])
 * </pre>
 * W_k^T q_nope equals q_nope . k_nope_t for k_nope_t = W_k c_t, so per-head keys and values are never
 * built; the cache holds only c and k_pe. kv_b_proj is used by rows ({@link Matrix#row}) because
 * the absorbed form needs its per-head transpose.
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
    private final Matrix kvB;
    private final Matrix o;

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
        kvB = w.matrix(p + "kv_b_proj.weight", heads * (nope + vDim), rank);
        o = w.matrix(p + "o_proj.weight", hidden, heads * vDim);
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
                rope.apply(kv, r * kvWidth + rank, pos);
                for (int h = 0; h < heads; h++) {
                    rope.apply(q, (r * heads + h) * qkDim + nope, pos);
                }
                s.cache().write(layer, pos, kv, r * kvWidth, kv, r * kvWidth + rank);
            }
        }

        float[] qLat = absorbKeys(q, rows);
        float[] ctx = new float[rows * heads * rank];
        for (SequenceRows s : sequences) {
            attend(s, q, qLat, ctx);
        }
        float[] attn = projectValues(ctx, rows);
        o.matmul(attn, out, rows);
    }

    /** qLat[r, h, :] = W_k[h]^T q_nope[r, h]: queries moved into latent space. */
    private float[] absorbKeys(float[] q, int rows) {
        int qkDim = nope + ropeDim;
        float[] qLat = new float[rows * heads * rank];
        float[] w = new float[rank];
        for (int h = 0; h < heads; h++) {
            for (int d = 0; d < nope; d++) {
                kvB.row(h * (nope + vDim) + d, w, 0);
                for (int r = 0; r < rows; r++) {
                    float qd = q[(r * heads + h) * qkDim + d];
                    int base = (r * heads + h) * rank;
                    for (int c = 0; c < rank; c++) {
                        qLat[base + c] += qd * w[c];
                    }
                }
            }
        }
        return qLat;
    }

    /** Causal softmax attention of one sequence's rows over its cached positions, in latent space. */
    private void attend(SequenceRows s, float[] q, float[] qLat, float[] ctx) {
        int qkDim = nope + ropeDim;
        int end = s.start() + s.length();
        float[] lat = new float[end * rank];
        float[] kPe = new float[end * ropeDim];
        s.cache().read(layer, end, lat, kPe);
        float[] p = new float[end];
        for (int r = s.firstRow(); r < s.firstRow() + s.length(); r++) {
            int visible = s.position(r) + 1;
            for (int h = 0; h < heads; h++) {
                int ql = (r * heads + h) * rank;
                int qp = (r * heads + h) * qkDim + nope;
                float max = Float.NEGATIVE_INFINITY;
                for (int t = 0; t < visible; t++) {
                    float dotC = 0f;
                    for (int c = 0; c < rank; c++) {
                        dotC += qLat[ql + c] * lat[t * rank + c];
                    }
                    float dotPe = 0f;
                    for (int i = 0; i < ropeDim; i++) {
                        dotPe += q[qp + i] * kPe[t * ropeDim + i];
                    }
                    p[t] = (dotC + dotPe) * softmaxScale;
                    max = Math.max(max, p[t]);
                }
                float sum = 0f;
                for (int t = 0; t < visible; t++) {
                    p[t] = (float) Math.exp(p[t] - max);
                    sum += p[t];
                }
                int co = (r * heads + h) * rank;
                for (int t = 0; t < visible; t++) {
                    float a = p[t] / sum;
                    for (int c = 0; c < rank; c++) {
                        ctx[co + c] += a * lat[t * rank + c];
                    }
                }
            }
        }
    }

    /** attn[r, h, j] = W_v[h][j] . ctx[r, h]: latent context back to per-head values. */
    private float[] projectValues(float[] ctx, int rows) {
        float[] attn = new float[rows * heads * vDim];
        float[] w = new float[rank];
        for (int h = 0; h < heads; h++) {
            for (int j = 0; j < vDim; j++) {
                kvB.row(h * (nope + vDim) + nope + j, w, 0);
                for (int r = 0; r < rows; r++) {
                    int base = (r * heads + h) * rank;
                    float sum = 0f;
                    for (int c = 0; c < rank; c++) {
                        sum += w[c] * ctx[base + c];
                    }
                    attn[(r * heads + h) * vDim + j] = sum;
                }
            }
        }
        return attn;
    }
}
