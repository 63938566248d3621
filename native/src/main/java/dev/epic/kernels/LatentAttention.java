package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;

/**
 * The two passes of absorbed MLA decode over one sequence's latent cache, for all heads of a query row
 * at once: each cached row is loaded once and used by eight heads from registers (per head, the same
 * row would be read eight times from L1, and the loads, not the FMAs, set the pace).
 *
 * <p>Fixed orders, so a score or context never depends on the blocking, the position range a thread
 * takes, or the JIT tier:
 * <ul>
 *   <li>score(h, t): one L-lane fp32 accumulator takes fma(q, k) over the full vectors of the latent
 *       columns and then of the rope columns, in column order; then {@link Simd#sumLanes}; then the
 *       remaining latent and rope columns, one rounded product-add each, in order.
 *   <li>context(h, c) += p(h, t) * c_t[c], one fma per position t in ascending order (as
 *       {@link VectorOps#axpys}).
 * </ul>
 * The bf16 overloads (a cache holding latents and rope keys in bf16) widen each cached value in
 * registers ({@link Bf16#widen(short)}, exact) and then take these same steps: their results are the
 * bits of the fp32 kernels on the widened cache.
 */
public final class LatentAttention {
    /** Heads per register block. */
    private static final int HEADS = 8;

    private LatentAttention() {}

    /**
     * out[outOff + h * outStride + t] = score(h, t) for h < heads and t < positions, where position t
     * has latent lat[latOff + t * rank ..] and rope key pe[peOff + t * rope ..], and head h has latent
     * query qLat[qLatOff + h * rank ..] and rope query qPe[qPeOff + h * qPeStride ..].
     */
    public static void scores(float[] lat, int latOff, int rank, float[] pe, int peOff, int rope, int positions,
            float[] qLat, int qLatOff, float[] qPe, int qPeOff, int qPeStride, int heads,
            float[] out, int outOff, int outStride) {
        scores(lat, latOff, rank, pe, peOff, rope, positions, qLat, qLatOff, qPe, qPeOff, qPeStride, heads, out, outOff,
                outStride, new float[2 * HEADS * L]);
    }

    private static void scores(float[] lat, int latOff, int rank, float[] pe, int peOff, int rope, int positions,
            float[] qLat, int qLatOff, float[] qPe, int qPeOff, int qPeStride, int heads,
            float[] out, int outOff, int outStride, float[] lanes) {
        int h = 0;
        if (L == 16) {
            for (; h + HEADS <= heads; h += HEADS) {
                int t = 0;
                for (; t + 2 <= positions; t += 2) {
                    pairOfEight(lat, latOff + t * rank, rank, pe, peOff + t * rope, rope, qLat, qLatOff + h * rank, qPe,
                            qPeOff + h * qPeStride, qPeStride, lanes);
                    for (int j = 0; j < HEADS; j++) {
                        out[outOff + (h + j) * outStride + t] = tails(lanes[j], lat, latOff + t * rank, rank, pe,
                                peOff + t * rope, rope, qLat, qLatOff + (h + j) * rank, qPe, qPeOff + (h + j) * qPeStride);
                        out[outOff + (h + j) * outStride + t + 1] = tails(lanes[HEADS + j], lat, latOff + (t + 1) * rank,
                                rank, pe, peOff + (t + 1) * rope, rope, qLat, qLatOff + (h + j) * rank, qPe,
                                qPeOff + (h + j) * qPeStride);
                    }
                }
                for (; t < positions; t++) {
                    for (int j = h; j < h + HEADS; j++) {
                        out[outOff + j * outStride + t] = one(lat, latOff + t * rank, rank, pe, peOff + t * rope, rope,
                                qLat, qLatOff + j * rank, qPe, qPeOff + j * qPeStride, lanes);
                    }
                }
            }
        }
        for (; h < heads; h++) {
            for (int t = 0; t < positions; t++) {
                out[outOff + h * outStride + t] = one(lat, latOff + t * rank, rank, pe, peOff + t * rope, rope, qLat,
                        qLatOff + h * rank, qPe, qPeOff + h * qPeStride, lanes);
            }
        }
    }

    /** score(h, t) for one pair, through the same steps as the register blocks. */
    private static float one(float[] lat, int l, int rank, float[] pe, int p, int rope, float[] qLat, int q,
            float[] qPe, int qp, float[] lanes) {
        FloatVector acc = FloatVector.zero(F);
        for (int c = 0; c + L <= rank; c += L) {
            acc = FloatVector.fromArray(F, lat, l + c).fma(FloatVector.fromArray(F, qLat, q + c), acc);
        }
        for (int c = 0; c + L <= rope; c += L) {
            acc = FloatVector.fromArray(F, pe, p + c).fma(FloatVector.fromArray(F, qPe, qp + c), acc);
        }
        acc.intoArray(lanes, 0);
        return tails(Simd.sumLanes(lanes, 0), lat, l, rank, pe, p, rope, qLat, q, qPe, qp);
    }

    /** The lane sum s plus the columns past the last full vector, latent then rope, in order. */
    private static float tails(float s, float[] lat, int l, int rank, float[] pe, int p, int rope, float[] qLat, int q,
            float[] qPe, int qp) {
        for (int c = rank - rank % L; c < rank; c++) {
            s += lat[l + c] * qLat[q + c];
        }
        for (int c = rope - rope % L; c < rope; c++) {
            s += pe[p + c] * qPe[qp + c];
        }
        return s;
    }

    /**
     * Lane sums of score(h + j, t) into lanes[j] and of score(h + j, t + 1) into lanes[8 + j], j < 8:
     * sixteen accumulators, two cached rows and one query vector live at a time.
     */
    private static void pairOfEight(float[] lat, int l0, int rank, float[] pe, int p0, int rope, float[] qLat, int q,
            float[] qPe, int qp, int qpStride, float[] lanes) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
        int l1 = l0 + rank;
        for (int c = 0; c + L <= rank; c += L) {
            FloatVector x = FloatVector.fromArray(F, lat, l0 + c), y = FloatVector.fromArray(F, lat, l1 + c);
            FloatVector k = FloatVector.fromArray(F, qLat, q + c);
            a0 = x.fma(k, a0);
            b0 = y.fma(k, b0);
            k = FloatVector.fromArray(F, qLat, q + rank + c);
            a1 = x.fma(k, a1);
            b1 = y.fma(k, b1);
            k = FloatVector.fromArray(F, qLat, q + 2 * rank + c);
            a2 = x.fma(k, a2);
            b2 = y.fma(k, b2);
            k = FloatVector.fromArray(F, qLat, q + 3 * rank + c);
            a3 = x.fma(k, a3);
            b3 = y.fma(k, b3);
            k = FloatVector.fromArray(F, qLat, q + 4 * rank + c);
            a4 = x.fma(k, a4);
            b4 = y.fma(k, b4);
            k = FloatVector.fromArray(F, qLat, q + 5 * rank + c);
            a5 = x.fma(k, a5);
            b5 = y.fma(k, b5);
            k = FloatVector.fromArray(F, qLat, q + 6 * rank + c);
            a6 = x.fma(k, a6);
            b6 = y.fma(k, b6);
            k = FloatVector.fromArray(F, qLat, q + 7 * rank + c);
            a7 = x.fma(k, a7);
            b7 = y.fma(k, b7);
        }
        int p1 = p0 + rope;
        for (int c = 0; c + L <= rope; c += L) {
            FloatVector x = FloatVector.fromArray(F, pe, p0 + c), y = FloatVector.fromArray(F, pe, p1 + c);
            FloatVector k = FloatVector.fromArray(F, qPe, qp + c);
            a0 = x.fma(k, a0);
            b0 = y.fma(k, b0);
            k = FloatVector.fromArray(F, qPe, qp + qpStride + c);
            a1 = x.fma(k, a1);
            b1 = y.fma(k, b1);
            k = FloatVector.fromArray(F, qPe, qp + 2 * qpStride + c);
            a2 = x.fma(k, a2);
            b2 = y.fma(k, b2);
            k = FloatVector.fromArray(F, qPe, qp + 3 * qpStride + c);
            a3 = x.fma(k, a3);
            b3 = y.fma(k, b3);
            k = FloatVector.fromArray(F, qPe, qp + 4 * qpStride + c);
            a4 = x.fma(k, a4);
            b4 = y.fma(k, b4);
            k = FloatVector.fromArray(F, qPe, qp + 5 * qpStride + c);
            a5 = x.fma(k, a5);
            b5 = y.fma(k, b5);
            k = FloatVector.fromArray(F, qPe, qp + 6 * qpStride + c);
            a6 = x.fma(k, a6);
            b6 = y.fma(k, b6);
            k = FloatVector.fromArray(F, qPe, qp + 7 * qpStride + c);
            a7 = x.fma(k, a7);
            b7 = y.fma(k, b7);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        a4.intoArray(lanes, 4 * L);
        a5.intoArray(lanes, 5 * L);
        a6.intoArray(lanes, 6 * L);
        a7.intoArray(lanes, 7 * L);
        b0.intoArray(lanes, 8 * L);
        b1.intoArray(lanes, 9 * L);
        b2.intoArray(lanes, 10 * L);
        b3.intoArray(lanes, 11 * L);
        b4.intoArray(lanes, 12 * L);
        b5.intoArray(lanes, 13 * L);
        b6.intoArray(lanes, 14 * L);
        b7.intoArray(lanes, 15 * L);
        Simd.sumLanes16(lanes, 0);
    }

    /**
     * ctx[ctxOff + h * rank + c] += sum_t p[pOff + h * pStride + t] * lat[latOff + t * rank + c] for
     * h < heads, t < positions (in order) and c in [c0, c1).
     */
    public static void contexts(float[] p, int pOff, int pStride, int heads, float[] lat, int latOff, int rank,
            int positions, float[] ctx, int ctxOff, int c0, int c1) {
        contexts(p, pOff, pStride, heads, new float[][] {lat}, Integer.MAX_VALUE, latOff, rank, positions, ctx, ctxOff, c0,
                c1);
    }

    /** {@code contexts} over pages of {@code pagePositions} rows, each from {@code latOff}. */
    private static void contexts(float[] p, int pOff, int pStride, int heads, float[][] lat, int pagePositions, int latOff,
            int rank, int positions, float[] ctx, int ctxOff, int c0, int c1) {
        int h = 0;
        for (; h + HEADS <= heads; h += HEADS) {
            int c = c0;
            for (; c + 2 * L <= c1; c += 2 * L) {
                eightByTwo(p, pOff + h * pStride, pStride, lat, pagePositions, latOff + c, rank, positions, ctx,
                        ctxOff + h * rank + c, rank);
            }
            for (int j = h; j < h + HEADS; j++) {
                axpys(p, pOff + j * pStride, positions, lat, pagePositions, latOff + c, rank, ctx, ctxOff + j * rank + c,
                        c1 - c);
            }
        }
        for (; h < heads; h++) {
            axpys(p, pOff + h * pStride, positions, lat, pagePositions, latOff + c0, rank, ctx, ctxOff + h * rank + c0,
                    c1 - c0);
        }
    }

    /** {@link VectorOps#axpys} page after page: the same fma per position, in order. */
    private static void axpys(float[] p, int pOff, int positions, float[][] lat, int pagePositions, int latOff, int rank,
            float[] y, int yOff, int n) {
        for (int t0 = 0, page = 0, run; t0 < positions; t0 += run, page++) {
            run = Math.min(positions - t0, pagePositions);
            VectorOps.axpys(p, pOff + t0, run, lat[page], latOff, rank, y, yOff, n);
        }
    }

    /** Two column vectors of eight heads' contexts, in registers across all positions (of every page). */
    private static void eightByTwo(float[] p, int p0, int ps, float[][] pages, int pagePositions, int l, int rank,
            int positions, float[] ctx, int y, int ys) {
        FloatVector a0 = FloatVector.fromArray(F, ctx, y), b0 = FloatVector.fromArray(F, ctx, y + L);
        FloatVector a1 = FloatVector.fromArray(F, ctx, y + ys), b1 = FloatVector.fromArray(F, ctx, y + ys + L);
        FloatVector a2 = FloatVector.fromArray(F, ctx, y + 2 * ys), b2 = FloatVector.fromArray(F, ctx, y + 2 * ys + L);
        FloatVector a3 = FloatVector.fromArray(F, ctx, y + 3 * ys), b3 = FloatVector.fromArray(F, ctx, y + 3 * ys + L);
        FloatVector a4 = FloatVector.fromArray(F, ctx, y + 4 * ys), b4 = FloatVector.fromArray(F, ctx, y + 4 * ys + L);
        FloatVector a5 = FloatVector.fromArray(F, ctx, y + 5 * ys), b5 = FloatVector.fromArray(F, ctx, y + 5 * ys + L);
        FloatVector a6 = FloatVector.fromArray(F, ctx, y + 6 * ys), b6 = FloatVector.fromArray(F, ctx, y + 6 * ys + L);
        FloatVector a7 = FloatVector.fromArray(F, ctx, y + 7 * ys), b7 = FloatVector.fromArray(F, ctx, y + 7 * ys + L);
        for (int t0 = 0, page = 0, run; t0 < positions; t0 += run, page++) { // the accumulators stay in registers
            run = Math.min(positions - t0, pagePositions);
            float[] lat = pages[page];
            for (int i = 0; i < run; i++) {
                int t = t0 + i;
                FloatVector x = FloatVector.fromArray(F, lat, l + i * rank);
                FloatVector z = FloatVector.fromArray(F, lat, l + i * rank + L);
                FloatVector k = FloatVector.broadcast(F, p[p0 + t]);
                a0 = x.fma(k, a0);
                b0 = z.fma(k, b0);
                k = FloatVector.broadcast(F, p[p0 + ps + t]);
                a1 = x.fma(k, a1);
                b1 = z.fma(k, b1);
                k = FloatVector.broadcast(F, p[p0 + 2 * ps + t]);
                a2 = x.fma(k, a2);
                b2 = z.fma(k, b2);
                k = FloatVector.broadcast(F, p[p0 + 3 * ps + t]);
                a3 = x.fma(k, a3);
                b3 = z.fma(k, b3);
                k = FloatVector.broadcast(F, p[p0 + 4 * ps + t]);
                a4 = x.fma(k, a4);
                b4 = z.fma(k, b4);
                k = FloatVector.broadcast(F, p[p0 + 5 * ps + t]);
                a5 = x.fma(k, a5);
                b5 = z.fma(k, b5);
                k = FloatVector.broadcast(F, p[p0 + 6 * ps + t]);
                a6 = x.fma(k, a6);
                b6 = z.fma(k, b6);
                k = FloatVector.broadcast(F, p[p0 + 7 * ps + t]);
                a7 = x.fma(k, a7);
                b7 = z.fma(k, b7);
            }
        }
        a0.intoArray(ctx, y);
        b0.intoArray(ctx, y + L);
        a1.intoArray(ctx, y + ys);
        b1.intoArray(ctx, y + ys + L);
        a2.intoArray(ctx, y + 2 * ys);
        b2.intoArray(ctx, y + 2 * ys + L);
        a3.intoArray(ctx, y + 3 * ys);
        b3.intoArray(ctx, y + 3 * ys + L);
        a4.intoArray(ctx, y + 4 * ys);
        b4.intoArray(ctx, y + 4 * ys + L);
        a5.intoArray(ctx, y + 5 * ys);
        b5.intoArray(ctx, y + 5 * ys + L);
        a6.intoArray(ctx, y + 6 * ys);
        b6.intoArray(ctx, y + 6 * ys + L);
        a7.intoArray(ctx, y + 7 * ys);
        b7.intoArray(ctx, y + 7 * ys + L);
    }

    /**
     * The fp32 {@code scores} on a bf16 cache: out[outOff + h * outStride + t] = score(h, t) for h &lt; heads
     * and t &lt; positions, where position t has latent widen(lat[latOff + t * rank ..]) and rope key
     * widen(pe[peOff + t * rope ..]) ({@link Bf16#widen(short)}), and head h has latent query
     * qLat[qLatOff + h * rank ..] and rope query qPe[qPeOff + h * qPeStride ..]. The same bits as the
     * fp32 overload on the widened arrays.
     */
    public static void scores(short[] lat, int latOff, int rank, short[] pe, int peOff, int rope, int positions,
            float[] qLat, int qLatOff, float[] qPe, int qPeOff, int qPeStride, int heads,
            float[] out, int outOff, int outStride) {
        scores(lat, latOff, rank, pe, peOff, rope, positions, qLat, qLatOff, qPe, qPeOff, qPeStride, heads, out, outOff,
                outStride, new float[2 * HEADS * L]);
    }

    private static void scores(short[] lat, int latOff, int rank, short[] pe, int peOff, int rope, int positions,
            float[] qLat, int qLatOff, float[] qPe, int qPeOff, int qPeStride, int heads,
            float[] out, int outOff, int outStride, float[] lanes) {
        int h = 0;
        if (L == 16) {
            for (; h + HEADS <= heads; h += HEADS) {
                int t = 0;
                for (; t + 2 <= positions; t += 2) {
                    pairOfEight(lat, latOff + t * rank, rank, pe, peOff + t * rope, rope, qLat, qLatOff + h * rank, qPe,
                            qPeOff + h * qPeStride, qPeStride, lanes);
                    for (int j = 0; j < HEADS; j++) {
                        out[outOff + (h + j) * outStride + t] = tails(lanes[j], lat, latOff + t * rank, rank, pe,
                                peOff + t * rope, rope, qLat, qLatOff + (h + j) * rank, qPe, qPeOff + (h + j) * qPeStride);
                        out[outOff + (h + j) * outStride + t + 1] = tails(lanes[HEADS + j], lat, latOff + (t + 1) * rank,
                                rank, pe, peOff + (t + 1) * rope, rope, qLat, qLatOff + (h + j) * rank, qPe,
                                qPeOff + (h + j) * qPeStride);
                    }
                }
                for (; t < positions; t++) {
                    for (int j = h; j < h + HEADS; j++) {
                        out[outOff + j * outStride + t] = one(lat, latOff + t * rank, rank, pe, peOff + t * rope, rope,
                                qLat, qLatOff + j * rank, qPe, qPeOff + j * qPeStride, lanes);
                    }
                }
            }
        }
        for (; h < heads; h++) {
            for (int t = 0; t < positions; t++) {
                out[outOff + h * outStride + t] = one(lat, latOff + t * rank, rank, pe, peOff + t * rope, rope, qLat,
                        qLatOff + h * rank, qPe, qPeOff + h * qPeStride, lanes);
            }
        }
    }

    /** The fp32 one on a bf16 cache. */
    private static float one(short[] lat, int l, int rank, short[] pe, int p, int rope, float[] qLat, int q,
            float[] qPe, int qp, float[] lanes) {
        FloatVector acc = FloatVector.zero(F);
        for (int c = 0; c + L <= rank; c += L) {
            acc = Simd.bf16(lat, l + c).fma(FloatVector.fromArray(F, qLat, q + c), acc);
        }
        for (int c = 0; c + L <= rope; c += L) {
            acc = Simd.bf16(pe, p + c).fma(FloatVector.fromArray(F, qPe, qp + c), acc);
        }
        acc.intoArray(lanes, 0);
        return tails(Simd.sumLanes(lanes, 0), lat, l, rank, pe, p, rope, qLat, q, qPe, qp);
    }

    /** The fp32 tails on a bf16 cache. */
    private static float tails(float s, short[] lat, int l, int rank, short[] pe, int p, int rope, float[] qLat, int q,
            float[] qPe, int qp) {
        for (int c = rank - rank % L; c < rank; c++) {
            s += Bf16.widen(lat[l + c]) * qLat[q + c];
        }
        for (int c = rope - rope % L; c < rope; c++) {
            s += Bf16.widen(pe[p + c]) * qPe[qp + c];
        }
        return s;
    }

    /** The fp32 pairOfEight on a bf16 cache. */
    private static void pairOfEight(short[] lat, int l0, int rank, short[] pe, int p0, int rope, float[] qLat, int q,
            float[] qPe, int qp, int qpStride, float[] lanes) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0, b4 = a0, b5 = a0, b6 = a0, b7 = a0;
        int l1 = l0 + rank;
        for (int c = 0; c + L <= rank; c += L) {
            FloatVector x = Simd.bf16(lat, l0 + c), y = Simd.bf16(lat, l1 + c);
            FloatVector k = FloatVector.fromArray(F, qLat, q + c);
            a0 = x.fma(k, a0);
            b0 = y.fma(k, b0);
            k = FloatVector.fromArray(F, qLat, q + rank + c);
            a1 = x.fma(k, a1);
            b1 = y.fma(k, b1);
            k = FloatVector.fromArray(F, qLat, q + 2 * rank + c);
            a2 = x.fma(k, a2);
            b2 = y.fma(k, b2);
            k = FloatVector.fromArray(F, qLat, q + 3 * rank + c);
            a3 = x.fma(k, a3);
            b3 = y.fma(k, b3);
            k = FloatVector.fromArray(F, qLat, q + 4 * rank + c);
            a4 = x.fma(k, a4);
            b4 = y.fma(k, b4);
            k = FloatVector.fromArray(F, qLat, q + 5 * rank + c);
            a5 = x.fma(k, a5);
            b5 = y.fma(k, b5);
            k = FloatVector.fromArray(F, qLat, q + 6 * rank + c);
            a6 = x.fma(k, a6);
            b6 = y.fma(k, b6);
            k = FloatVector.fromArray(F, qLat, q + 7 * rank + c);
            a7 = x.fma(k, a7);
            b7 = y.fma(k, b7);
        }
        int p1 = p0 + rope;
        for (int c = 0; c + L <= rope; c += L) {
            FloatVector x = Simd.bf16(pe, p0 + c), y = Simd.bf16(pe, p1 + c);
            FloatVector k = FloatVector.fromArray(F, qPe, qp + c);
            a0 = x.fma(k, a0);
            b0 = y.fma(k, b0);
            k = FloatVector.fromArray(F, qPe, qp + qpStride + c);
            a1 = x.fma(k, a1);
            b1 = y.fma(k, b1);
            k = FloatVector.fromArray(F, qPe, qp + 2 * qpStride + c);
            a2 = x.fma(k, a2);
            b2 = y.fma(k, b2);
            k = FloatVector.fromArray(F, qPe, qp + 3 * qpStride + c);
            a3 = x.fma(k, a3);
            b3 = y.fma(k, b3);
            k = FloatVector.fromArray(F, qPe, qp + 4 * qpStride + c);
            a4 = x.fma(k, a4);
            b4 = y.fma(k, b4);
            k = FloatVector.fromArray(F, qPe, qp + 5 * qpStride + c);
            a5 = x.fma(k, a5);
            b5 = y.fma(k, b5);
            k = FloatVector.fromArray(F, qPe, qp + 6 * qpStride + c);
            a6 = x.fma(k, a6);
            b6 = y.fma(k, b6);
            k = FloatVector.fromArray(F, qPe, qp + 7 * qpStride + c);
            a7 = x.fma(k, a7);
            b7 = y.fma(k, b7);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, L);
        a2.intoArray(lanes, 2 * L);
        a3.intoArray(lanes, 3 * L);
        a4.intoArray(lanes, 4 * L);
        a5.intoArray(lanes, 5 * L);
        a6.intoArray(lanes, 6 * L);
        a7.intoArray(lanes, 7 * L);
        b0.intoArray(lanes, 8 * L);
        b1.intoArray(lanes, 9 * L);
        b2.intoArray(lanes, 10 * L);
        b3.intoArray(lanes, 11 * L);
        b4.intoArray(lanes, 12 * L);
        b5.intoArray(lanes, 13 * L);
        b6.intoArray(lanes, 14 * L);
        b7.intoArray(lanes, 15 * L);
        Simd.sumLanes16(lanes, 0);
    }

    /**
     * The fp32 {@code contexts} on a bf16 cache: ctx[ctxOff + h * rank + c] +=
     * sum_t p[pOff + h * pStride + t] * widen(lat[latOff + t * rank + c]) for h &lt; heads, t &lt; positions
     * (in order) and c in [c0, c1). The same bits as the fp32 overload on the widened latents.
     */
    public static void contexts(float[] p, int pOff, int pStride, int heads, short[] lat, int latOff, int rank,
            int positions, float[] ctx, int ctxOff, int c0, int c1) {
        contexts(p, pOff, pStride, heads, new short[][] {lat}, Integer.MAX_VALUE, latOff, rank, positions, ctx, ctxOff, c0,
                c1);
    }

    /** The fp32 paged contexts on a bf16 cache. */
    private static void contexts(float[] p, int pOff, int pStride, int heads, short[][] lat, int pagePositions, int latOff,
            int rank, int positions, float[] ctx, int ctxOff, int c0, int c1) {
        int h = 0;
        for (; h + HEADS <= heads; h += HEADS) {
            int c = c0;
            for (; c + 2 * L <= c1; c += 2 * L) {
                eightByTwo(p, pOff + h * pStride, pStride, lat, pagePositions, latOff + c, rank, positions, ctx,
                        ctxOff + h * rank + c, rank);
            }
            for (int j = h; j < h + HEADS; j++) {
                axpys(p, pOff + j * pStride, positions, lat, pagePositions, latOff + c, rank, ctx, ctxOff + j * rank + c,
                        c1 - c);
            }
        }
        for (; h < heads; h++) {
            axpys(p, pOff + h * pStride, positions, lat, pagePositions, latOff + c0, rank, ctx, ctxOff + h * rank + c0,
                    c1 - c0);
        }
    }

    /** The fp32 paged axpys on a bf16 cache. */
    private static void axpys(float[] p, int pOff, int positions, short[][] lat, int pagePositions, int latOff, int rank,
            float[] y, int yOff, int n) {
        for (int t0 = 0, page = 0, run; t0 < positions; t0 += run, page++) {
            run = Math.min(positions - t0, pagePositions);
            VectorOps.axpys(p, pOff + t0, run, lat[page], latOff, rank, y, yOff, n);
        }
    }

    /** The fp32 eightByTwo on a bf16 cache. */
    private static void eightByTwo(float[] p, int p0, int ps, short[][] pages, int pagePositions, int l, int rank,
            int positions, float[] ctx, int y, int ys) {
        FloatVector a0 = FloatVector.fromArray(F, ctx, y), b0 = FloatVector.fromArray(F, ctx, y + L);
        FloatVector a1 = FloatVector.fromArray(F, ctx, y + ys), b1 = FloatVector.fromArray(F, ctx, y + ys + L);
        FloatVector a2 = FloatVector.fromArray(F, ctx, y + 2 * ys), b2 = FloatVector.fromArray(F, ctx, y + 2 * ys + L);
        FloatVector a3 = FloatVector.fromArray(F, ctx, y + 3 * ys), b3 = FloatVector.fromArray(F, ctx, y + 3 * ys + L);
        FloatVector a4 = FloatVector.fromArray(F, ctx, y + 4 * ys), b4 = FloatVector.fromArray(F, ctx, y + 4 * ys + L);
        FloatVector a5 = FloatVector.fromArray(F, ctx, y + 5 * ys), b5 = FloatVector.fromArray(F, ctx, y + 5 * ys + L);
        FloatVector a6 = FloatVector.fromArray(F, ctx, y + 6 * ys), b6 = FloatVector.fromArray(F, ctx, y + 6 * ys + L);
        FloatVector a7 = FloatVector.fromArray(F, ctx, y + 7 * ys), b7 = FloatVector.fromArray(F, ctx, y + 7 * ys + L);
        for (int t0 = 0, page = 0, run; t0 < positions; t0 += run, page++) { // the accumulators stay in registers
            run = Math.min(positions - t0, pagePositions);
            short[] lat = pages[page];
            for (int i = 0; i < run; i++) {
                int t = t0 + i;
                FloatVector x = Simd.bf16(lat, l + i * rank), z = Simd.bf16(lat, l + i * rank + L);
                FloatVector k = FloatVector.broadcast(F, p[p0 + t]);
                a0 = x.fma(k, a0);
                b0 = z.fma(k, b0);
                k = FloatVector.broadcast(F, p[p0 + ps + t]);
                a1 = x.fma(k, a1);
                b1 = z.fma(k, b1);
                k = FloatVector.broadcast(F, p[p0 + 2 * ps + t]);
                a2 = x.fma(k, a2);
                b2 = z.fma(k, b2);
                k = FloatVector.broadcast(F, p[p0 + 3 * ps + t]);
                a3 = x.fma(k, a3);
                b3 = z.fma(k, b3);
                k = FloatVector.broadcast(F, p[p0 + 4 * ps + t]);
                a4 = x.fma(k, a4);
                b4 = z.fma(k, b4);
                k = FloatVector.broadcast(F, p[p0 + 5 * ps + t]);
                a5 = x.fma(k, a5);
                b5 = z.fma(k, b5);
                k = FloatVector.broadcast(F, p[p0 + 6 * ps + t]);
                a6 = x.fma(k, a6);
                b6 = z.fma(k, b6);
                k = FloatVector.broadcast(F, p[p0 + 7 * ps + t]);
                a7 = x.fma(k, a7);
                b7 = z.fma(k, b7);
            }
        }
        a0.intoArray(ctx, y);
        b0.intoArray(ctx, y + L);
        a1.intoArray(ctx, y + ys);
        b1.intoArray(ctx, y + ys + L);
        a2.intoArray(ctx, y + 2 * ys);
        b2.intoArray(ctx, y + 2 * ys + L);
        a3.intoArray(ctx, y + 3 * ys);
        b3.intoArray(ctx, y + 3 * ys + L);
        a4.intoArray(ctx, y + 4 * ys);
        b4.intoArray(ctx, y + 4 * ys + L);
        a5.intoArray(ctx, y + 5 * ys);
        b5.intoArray(ctx, y + 5 * ys + L);
        a6.intoArray(ctx, y + 6 * ys);
        b6.intoArray(ctx, y + 6 * ys + L);
        a7.intoArray(ctx, y + 7 * ys);
        b7.intoArray(ctx, y + 7 * ys + L);
    }
    /**
     * {@code scores} over a paged cache: positions [t0, t1) where position t is row t % pagePositions of
     * page t / pagePositions (latents lat[page], rope keys pe[page], each from index 0), written to
     * out[outOff + h * outStride + t]. A score depends on its own position only, so these are the
     * contiguous kernel's bits.
     */
    public static void scoresPaged(float[][] lat, float[][] pe, int pagePositions, int rank, int rope, int t0, int t1,
            float[] qLat, int qLatOff, float[] qPe, int qPeOff, int qPeStride, int heads,
            float[] out, int outOff, int outStride) {
        float[] lanes = new float[2 * HEADS * L];
        for (int t = t0; t < t1; ) {
            int page = t / pagePositions;
            int i = t % pagePositions;
            int n = Math.min(t1 - t, pagePositions - i);
            scores(lat[page], i * rank, rank, pe[page], i * rope, rope, n, qLat, qLatOff, qPe, qPeOff, qPeStride, heads,
                    out, outOff + t, outStride, lanes);
            t += n;
        }
    }

    /** {@link #scoresPaged(float[][], float[][], int, int, int, int, int, float[], int, float[], int, int, int, float[], int, int)} on a bf16 cache. */
    public static void scoresPaged(short[][] lat, short[][] pe, int pagePositions, int rank, int rope, int t0, int t1,
            float[] qLat, int qLatOff, float[] qPe, int qPeOff, int qPeStride, int heads,
            float[] out, int outOff, int outStride) {
        float[] lanes = new float[2 * HEADS * L];
        for (int t = t0; t < t1; ) {
            int page = t / pagePositions;
            int i = t % pagePositions;
            int n = Math.min(t1 - t, pagePositions - i);
            scores(lat[page], i * rank, rank, pe[page], i * rope, rope, n, qLat, qLatOff, qPe, qPeOff, qPeStride, heads,
                    out, outOff + t, outStride, lanes);
            t += n;
        }
    }

    /**
     * {@code contexts} over a paged cache: positions [0, positions), page after page (lat[page] from index
     * 0, pagePositions rows each). Each context takes one fma per position in ascending order across the
     * pages, in registers, so these are the contiguous kernel's bits at its speed.
     */
    public static void contextsPaged(float[] p, int pOff, int pStride, int heads, float[][] lat, int pagePositions,
            int rank, int positions, float[] ctx, int ctxOff, int c0, int c1) {
        contexts(p, pOff, pStride, heads, lat, pagePositions, 0, rank, positions, ctx, ctxOff, c0, c1);
    }

    /** {@link #contextsPaged(float[], int, int, int, float[][], int, int, int, float[], int, int, int)} on a bf16 cache. */
    public static void contextsPaged(float[] p, int pOff, int pStride, int heads, short[][] lat, int pagePositions,
            int rank, int positions, float[] ctx, int ctxOff, int c0, int c1) {
        contexts(p, pOff, pStride, heads, lat, pagePositions, 0, rank, positions, ctx, ctxOff, c0, c1);
    }
}
