package dev.epic.model.layers;

import dev.epic.kernels.LatentAttention;
import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import dev.epic.kernels.Parallel;
import dev.epic.kernels.VectorOps;
import dev.epic.model.KvPages;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.IntStream;

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
 * built; the cache holds only c and k_pe (fp32, or bf16 widened in registers), and attention reads
 * it in place (see {@link #attendRows} for how rows and heads share the kernel pool).
 *
 * <p>Prefill runs in this form too, row by row in a fixed order, so a position's output never depends
 * on how its prompt was chunked or what it was batched with: a request's tokens do not depend on the
 * server's load. The original, expanded form (k_nope | v = kv_b_proj(c_t), then softmax(Q K^T) V per
 * head) needs fewer multiply-adds for long chunks (see {@link #expanded}), but its GEMMs' sums follow
 * the chunk's length, and on the CPU it measured no faster (bench-v3, 2,048- and 8,192-token prompts:
 * the same prefill tok/s). {@code -Depic.mla.form=auto|expanded} selects it (tests, benchmarks).
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
     * kv_b_proj as stored or converted, [heads x (nope + v)] rows of rank: the expanded form multiplies
     * by it, the absorbed form widens its rows one at a time (W_k rows combined for W_k^T q, W_v rows
     * dotted with the context). No fp32 copy: that was 3.9 GB of heap for V3's 61 layers, and reading
     * it cost more than widening q4 or bf16 rows in registers.
     */
    private final Matrix kvB;
    private final Matrix o;
    private final Form form;

    /**
     * Which attention form to use: ABSORBED (the default, chunk-invariant), EXPANDED, or AUTO (by cost
     * per chunk). Set with -Depic.mla.form (tests, benchmarks).
     */
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
        form = Form.valueOf(System.getProperty("epic.mla.form", "ABSORBED").toUpperCase(java.util.Locale.ROOT));
        kvB = w.matrix(p + "kv_b_proj.weight", heads * (nope + vDim), rank);
        o = w.matrix(p + "o_proj.weight", hidden, heads * vDim);
    }

    /** Weight bytes one token reads: the projections, kv_b_proj included. */
    public long storageBytes() {
        long b = qB.storageBytes() + kvA.storageBytes() + kvB.storageBytes() + o.storageBytes();
        return qA != null ? b + qA.storageBytes() : b;
    }

    /** Multiply-adds of one row through the projections (kv_b_proj included; the attention over the cache is not). */
    public long multiplyAdds() {
        long m = macs(qB) + macs(kvA) + macs(kvB) + macs(o);
        return qA != null ? m + macs(qA) : m;
    }

    private static long macs(Matrix m) {
        return (long) m.rows() * m.cols();
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
        int[] todo = IntStream.range(0, rows).filter(ar::attends).toArray();
        for (int b0 = 0; b0 < todo.length; b0 += ROW_BLOCK) {
            attendRows(Arrays.copyOfRange(todo, b0, Math.min(todo.length, b0 + ROW_BLOCK)), q, ar, attn);
        }
        o.matmul(attn, out, rows);
    }

    /**
     * Whether this sequence's rows attend in the expanded form: per-head keys and values built with
     * kv_b_proj for all its positions, then two GEMMs per head. It costs end x kv_b_proj plus
     * L x end x (qk + v) per head, against L x kv_b_proj plus sum(visible) x (2 rank + rope) per head
     * for the absorbed form: under AUTO long prefill chunks go expanded, decode rows absorbed.
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
        float[] lat = new float[end * rank]; // contiguous (and widened from bf16): kv_b_proj's GEMM takes fp32 rows
        float[] kPe = new float[end * ropeDim];
        s.cache().read(layer, end, lat, kPe);
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

    /** Rows whose latent queries and contexts are live at once (bounds the buffers for long absorbed chunks). */
    private static final int ROW_BLOCK = 32;

    /**
     * All heads of the given query rows, in latent space:
     * <pre>
     *   qLat_h = W_k[h]^T q_nope_h
     *   p_h    = softmax_t((qLat_h . c_t + q_pe_h . k_pe_t) * scale)   over the visible cached positions t
     *   ctx_h  = sum_t p_h[t] c_t
     *   o_h    = W_v[h] ctx_h
     * </pre>
     * W_k and W_v are widened once per head for all the rows (phases 1 and 3, split over heads). The
     * cached latents are walked twice per row (scores, then contexts) by {@link LatentAttention}, which
     * serves eight heads per load and fixes every sum's order, so a row's result never depends on the
     * batch. With few rows each row's positions (scores) and latent columns (contexts) are split over
     * the kernel threads; with enough rows, whole rows go to each thread.
     */
    private void attendRows(int[] rs, float[] q, AttentionRows ar, float[] attn) {
        int qkDim = nope + ropeDim;
        int n = rs.length;
        float[] qLat = new float[n * heads * rank];
        float[] ctx = new float[n * heads * rank];
        Parallel.forRange(heads, 1, (long) heads * nope * rank * (n + 1), (h0, h1) -> {
            float[] w = widened(nope * rank);
            for (int h = h0; h < h1; h++) {
                for (int i = 0; i < nope; i++) {
                    kvB.row(h * (nope + vDim) + i, w, i * rank);
                }
                // qLat_h += q_nope_h[i] * W_k[h] row i for i in order, two query rows per pass over W_k[h].
                for (int j = 0; j < n; j += 2) {
                    int k = Math.min(j + 1, n - 1); // an odd last row is its own partner
                    VectorOps.axpys2(q, (rs[j] * heads + h) * qkDim, (rs[k] * heads + h) * qkDim, nope, w, 0, rank, qLat,
                            (j * heads + h) * rank, (k * heads + h) * rank, rank);
                }
            }
        });
        if (n >= 2 * Parallel.threads()) {
            long work = 0;
            for (int r : rs) {
                work += (long) heads * ar.visible()[r] * (2L * rank + ropeDim);
            }
            Parallel.forRange(n, 1, work, (j0, j1) -> {
                for (int j = j0; j < j1; j++) {
                    attendLatent(rs[j], q, ar, qLat, ctx, j * heads * rank, false);
                }
            });
        } else {
            for (int j = 0; j < n; j++) {
                attendLatent(rs[j], q, ar, qLat, ctx, j * heads * rank, true);
            }
        }
        Parallel.forRange(heads, 1, (long) heads * vDim * rank * (n + 1), (h0, h1) -> {
            float[] w = widened(vDim * rank);
            for (int h = h0; h < h1; h++) {
                for (int i = 0; i < vDim; i++) {
                    kvB.row(h * (nope + vDim) + nope + i, w, i * rank);
                }
                for (int j = 0; j < n; j += 2) { // o_h[i] = W_v[h] row i . ctx_h, two rows' contexts per pass
                    int k = Math.min(j + 1, n - 1);
                    VectorOps.dots2(w, 0, vDim, rank, ctx, (j * heads + h) * rank, (k * heads + h) * rank, attn,
                            (rs[j] * heads + h) * vDim, (rs[k] * heads + h) * vDim);
                }
            }
        });
    }

    /** Per kernel thread: one head's widened W_k or W_v rows (V3: 256 KB), reused across heads and layers. */
    private static final ThreadLocal<float[]> WIDENED = ThreadLocal.withInitial(() -> new float[0]);

    private static float[] widened(int n) {
        float[] w = WIDENED.get();
        if (w.length < n) {
            w = new float[n];
            WIDENED.set(w);
        }
        return w;
    }

    /**
     * Scores, softmax and contexts of row r over its cached latents: reads qLat and writes ctx at
     * [off, off + heads * rank). {@code split} spreads positions and columns over the kernel threads.
     */
    private void attendLatent(int r, float[] q, AttentionRows ar, float[] qLat, float[] ctx, int off, boolean split) {
        int qkDim = nope + ropeDim;
        KvPages pages = ar.pages()[r];
        int visible = ar.visible()[r];
        float[] scores = new float[heads * visible];
        int qPe = r * heads * qkDim + nope;
        Parallel.Range scorePositions = pages.bf16()
                ? (t0, t1) -> LatentAttention.scoresPaged(pages.latent16(), pages.kPe16(), pages.positions(), rank,
                        ropeDim, t0, t1, qLat, off, q, qPe, qkDim, heads, scores, 0, visible)
                : (t0, t1) -> LatentAttention.scoresPaged(pages.latent(), pages.kPe(), pages.positions(), rank, ropeDim,
                        t0, t1, qLat, off, q, qPe, qkDim, heads, scores, 0, visible);
        if (split) {
            Parallel.forRange(visible, 2, (long) heads * visible * (rank + ropeDim), scorePositions);
        } else {
            scorePositions.run(0, visible);
        }
        for (int h = 0; h < heads; h++) {
            VectorOps.scale(scores, h * visible, visible, softmaxScale);
            VectorOps.softmax(scores, h * visible, visible);
        }
        // Each thread takes one run of column slices and walks all positions for them, page after page.
        // Slices are multiples of the vector width, so every column is summed the same way whatever the split.
        int slice = 4 * VectorOps.LANES;
        Parallel.Range contextSlices = pages.bf16()
                ? (s0, s1) -> LatentAttention.contextsPaged(scores, 0, visible, heads, pages.latent16(), pages.positions(),
                        rank, visible, ctx, off, s0 * slice, Math.min(rank, s1 * slice))
                : (s0, s1) -> LatentAttention.contextsPaged(scores, 0, visible, heads, pages.latent(), pages.positions(),
                        rank, visible, ctx, off, s0 * slice, Math.min(rank, s1 * slice));
        int slices = Math.ceilDiv(rank, slice);
        if (split) {
            Parallel.forRange(slices, Math.ceilDiv(slices, Parallel.threads()), (long) heads * visible * rank, contextSlices);
        } else {
            contextSlices.run(0, slices);
        }
    }

    /** Per step row: its sequence's cached latents and rope keys, read in place, and how many positions it sees. */
    private record AttentionRows(KvPages[] pages, int[] visible) {
        static AttentionRows of(List<SequenceRows> sequences, int rows, int layer, int rank, int rope) {
            KvPages[] pages = new KvPages[rows];
            int[] visible = new int[rows];
            for (SequenceRows s : sequences) {
                KvPages p = s.cache().pages(layer, s.start() + s.length(), rank, rope);
                for (int r = s.firstRow(); r < s.firstRow() + s.length(); r++) {
                    pages[r] = p;
                    visible[r] = s.position(r) + 1;
                }
            }
            return new AttentionRows(pages, visible);
        }

        boolean attends(int r) {
            return pages[r] != null;
        }
    }
}
