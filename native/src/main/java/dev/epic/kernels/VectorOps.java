package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Fused fp32 vector helpers for the model code (norms, activations, attention). Each works on a
 * slice [off, off + n) of float arrays; out may alias the input.
 */
public final class VectorOps {
    /** fp32 lanes per vector on this machine (16 with AVX-512). */
    public static final int LANES = L;

    private VectorOps() {}

    /** sum_i a[aOff+i] * b[bOff+i]. */
    public static float dot(float[] a, int aOff, float[] b, int bOff, int n) {
        FloatVector s0 = FloatVector.zero(F), s1 = s0;
        int i = 0;
        for (; i + 2 * L <= n; i += 2 * L) {
            s0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), s0);
            s1 = FloatVector.fromArray(F, a, aOff + i + L).fma(FloatVector.fromArray(F, b, bOff + i + L), s1);
        }
        for (; i + L <= n; i += L) {
            s0 = FloatVector.fromArray(F, a, aOff + i).fma(FloatVector.fromArray(F, b, bOff + i), s0);
        }
        float s = Simd.sumLanes(s0.add(s1));
        for (; i < n; i++) {
            s += a[aOff + i] * b[bOff + i];
        }
        return s;
    }

    /**
     * y[yOff + c] += sum_r coef[cOff + r] * a[aOff + r * stride + c] for c in [0, n): the same bits as
     * one {@link #axpy} per row in row order, but y stays in registers across the rows.
     */
    public static void axpys(float[] coef, int cOff, int rows, float[] a, int aOff, int stride, float[] y, int yOff, int n) {
        int c = 0;
        for (; c + 4 * L <= n; c += 4 * L) {
            FloatVector y0 = FloatVector.fromArray(F, y, yOff + c), y1 = FloatVector.fromArray(F, y, yOff + c + L);
            FloatVector y2 = FloatVector.fromArray(F, y, yOff + c + 2 * L), y3 = FloatVector.fromArray(F, y, yOff + c + 3 * L);
            for (int r = 0; r < rows; r++) {
                FloatVector k = FloatVector.broadcast(F, coef[cOff + r]);
                int p = aOff + r * stride + c;
                y0 = FloatVector.fromArray(F, a, p).fma(k, y0);
                y1 = FloatVector.fromArray(F, a, p + L).fma(k, y1);
                y2 = FloatVector.fromArray(F, a, p + 2 * L).fma(k, y2);
                y3 = FloatVector.fromArray(F, a, p + 3 * L).fma(k, y3);
            }
            y0.intoArray(y, yOff + c);
            y1.intoArray(y, yOff + c + L);
            y2.intoArray(y, yOff + c + 2 * L);
            y3.intoArray(y, yOff + c + 3 * L);
        }
        for (; c + L <= n; c += L) {
            FloatVector y0 = FloatVector.fromArray(F, y, yOff + c);
            for (int r = 0; r < rows; r++) {
                y0 = FloatVector.fromArray(F, a, aOff + r * stride + c).fma(FloatVector.broadcast(F, coef[cOff + r]), y0);
            }
            y0.intoArray(y, yOff + c);
        }
        for (; c < n; c++) {
            float acc = y[yOff + c];
            for (int r = 0; r < rows; r++) {
                acc += coef[cOff + r] * a[aOff + r * stride + c];
            }
            y[yOff + c] = acc;
        }
    }

    /**
     * {@link #axpys(float[], int, int, float[], int, int, float[], int, int)} with bf16 rows:
     * y[yOff + c] += sum_r coef[cOff + r] * widen(a[aOff + r * stride + c]) for c in [0, n), the same
     * bits as the fp32 form on the widened rows ({@link Bf16#widen(short)}).
     */
    public static void axpys(float[] coef, int cOff, int rows, short[] a, int aOff, int stride, float[] y, int yOff, int n) {
        int c = 0;
        for (; c + 4 * L <= n; c += 4 * L) {
            FloatVector y0 = FloatVector.fromArray(F, y, yOff + c), y1 = FloatVector.fromArray(F, y, yOff + c + L);
            FloatVector y2 = FloatVector.fromArray(F, y, yOff + c + 2 * L), y3 = FloatVector.fromArray(F, y, yOff + c + 3 * L);
            for (int r = 0; r < rows; r++) {
                FloatVector k = FloatVector.broadcast(F, coef[cOff + r]);
                int p = aOff + r * stride + c;
                y0 = Simd.bf16(a, p).fma(k, y0);
                y1 = Simd.bf16(a, p + L).fma(k, y1);
                y2 = Simd.bf16(a, p + 2 * L).fma(k, y2);
                y3 = Simd.bf16(a, p + 3 * L).fma(k, y3);
            }
            y0.intoArray(y, yOff + c);
            y1.intoArray(y, yOff + c + L);
            y2.intoArray(y, yOff + c + 2 * L);
            y3.intoArray(y, yOff + c + 3 * L);
        }
        for (; c + L <= n; c += L) {
            FloatVector y0 = FloatVector.fromArray(F, y, yOff + c);
            for (int r = 0; r < rows; r++) {
                y0 = Simd.bf16(a, aOff + r * stride + c).fma(FloatVector.broadcast(F, coef[cOff + r]), y0);
            }
            y0.intoArray(y, yOff + c);
        }
        for (; c < n; c++) {
            float acc = y[yOff + c];
            for (int r = 0; r < rows; r++) {
                acc += coef[cOff + r] * Bf16.widen(a[aOff + r * stride + c]);
            }
            y[yOff + c] = acc;
        }
    }

    /**
     * {@link #axpys} for two outputs at once, y[yA ..] with coefficients coef[cA ..] and y[yB ..] with
     * coef[cB ..], over the same rows of a: each vector of a is loaded once for both. The same bits
     * as two axpys calls (used for several query rows against one head's absorbed W_k). yB == yA means
     * a single output with coefficients cA.
     */
    public static void axpys2(float[] coef, int cA, int cB, int rows, float[] a, int aOff, int stride, float[] y,
            int yA, int yB, int n) {
        if (yA == yB) {
            axpys(coef, cA, rows, a, aOff, stride, y, yA, n);
            return;
        }
        int c = 0;
        for (; c + 4 * L <= n; c += 4 * L) {
            FloatVector p0 = FloatVector.fromArray(F, y, yA + c), p1 = FloatVector.fromArray(F, y, yA + c + L);
            FloatVector p2 = FloatVector.fromArray(F, y, yA + c + 2 * L), p3 = FloatVector.fromArray(F, y, yA + c + 3 * L);
            FloatVector q0 = FloatVector.fromArray(F, y, yB + c), q1 = FloatVector.fromArray(F, y, yB + c + L);
            FloatVector q2 = FloatVector.fromArray(F, y, yB + c + 2 * L), q3 = FloatVector.fromArray(F, y, yB + c + 3 * L);
            for (int r = 0; r < rows; r++) {
                FloatVector ka = FloatVector.broadcast(F, coef[cA + r]), kb = FloatVector.broadcast(F, coef[cB + r]);
                int p = aOff + r * stride + c;
                FloatVector v = FloatVector.fromArray(F, a, p);
                p0 = v.fma(ka, p0);
                q0 = v.fma(kb, q0);
                v = FloatVector.fromArray(F, a, p + L);
                p1 = v.fma(ka, p1);
                q1 = v.fma(kb, q1);
                v = FloatVector.fromArray(F, a, p + 2 * L);
                p2 = v.fma(ka, p2);
                q2 = v.fma(kb, q2);
                v = FloatVector.fromArray(F, a, p + 3 * L);
                p3 = v.fma(ka, p3);
                q3 = v.fma(kb, q3);
            }
            p0.intoArray(y, yA + c);
            p1.intoArray(y, yA + c + L);
            p2.intoArray(y, yA + c + 2 * L);
            p3.intoArray(y, yA + c + 3 * L);
            q0.intoArray(y, yB + c);
            q1.intoArray(y, yB + c + L);
            q2.intoArray(y, yB + c + 2 * L);
            q3.intoArray(y, yB + c + 3 * L);
        }
        if (c < n) { // the rest of the columns as axpys does them
            axpys(coef, cA, rows, a, aOff + c, stride, y, yA + c, n - c);
            axpys(coef, cB, rows, a, aOff + c, stride, y, yB + c, n - c);
        }
    }

    /**
     * out[oA + i] = {@link #dot}(w row i, x[xA ..]) and out[oB + i] = dot(w row i, x[xB ..]) for the
     * {@code rows} rows of w (row i at wOff + i * n), the same bits as dot: four rows and two inputs
     * per pass, so each load feeds several products and the lane sums are added four at a time in
     * registers. xB may equal xA (then oB gets the same values as oA).
     */
    public static void dots2(float[] w, int wOff, int rows, int n, float[] x, int xA, int xB, float[] out, int oA,
            int oB) {
        if (xA == xB) { // one input: its products once
            for (int i = 0; i < rows; i++) {
                out[oA + i] = dot(w, wOff + i * n, x, xA, n);
                out[oB + i] = out[oA + i];
            }
            return;
        }
        float[] acc = DOTS_ACC.get();
        int i = 0;
        for (; i + 4 <= rows; i += 4) {
            int w0 = wOff + i * n, w1 = w0 + n, w2 = w1 + n, w3 = w2 + n;
            // Two accumulators per product (even and odd vector steps), as dot.
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
            FloatVector e0 = a0, e1 = a0, e2 = a0, e3 = a0, f0 = a0, f1 = a0, f2 = a0, f3 = a0;
            int k = 0;
            for (; k + 2 * L <= n; k += 2 * L) {
                FloatVector u = FloatVector.fromArray(F, x, xA + k), uu = FloatVector.fromArray(F, x, xA + k + L);
                FloatVector v = FloatVector.fromArray(F, x, xB + k), vv = FloatVector.fromArray(F, x, xB + k + L);
                FloatVector m = FloatVector.fromArray(F, w, w0 + k), mm = FloatVector.fromArray(F, w, w0 + k + L);
                a0 = m.fma(u, a0);
                e0 = mm.fma(uu, e0);
                b0 = m.fma(v, b0);
                f0 = mm.fma(vv, f0);
                m = FloatVector.fromArray(F, w, w1 + k);
                mm = FloatVector.fromArray(F, w, w1 + k + L);
                a1 = m.fma(u, a1);
                e1 = mm.fma(uu, e1);
                b1 = m.fma(v, b1);
                f1 = mm.fma(vv, f1);
                m = FloatVector.fromArray(F, w, w2 + k);
                mm = FloatVector.fromArray(F, w, w2 + k + L);
                a2 = m.fma(u, a2);
                e2 = mm.fma(uu, e2);
                b2 = m.fma(v, b2);
                f2 = mm.fma(vv, f2);
                m = FloatVector.fromArray(F, w, w3 + k);
                mm = FloatVector.fromArray(F, w, w3 + k + L);
                a3 = m.fma(u, a3);
                e3 = mm.fma(uu, e3);
                b3 = m.fma(v, b3);
                f3 = mm.fma(vv, f3);
            }
            for (; k + L <= n; k += L) {
                FloatVector u = FloatVector.fromArray(F, x, xA + k), v = FloatVector.fromArray(F, x, xB + k);
                FloatVector m = FloatVector.fromArray(F, w, w0 + k);
                a0 = m.fma(u, a0);
                b0 = m.fma(v, b0);
                m = FloatVector.fromArray(F, w, w1 + k);
                a1 = m.fma(u, a1);
                b1 = m.fma(v, b1);
                m = FloatVector.fromArray(F, w, w2 + k);
                a2 = m.fma(u, a2);
                b2 = m.fma(v, b2);
                m = FloatVector.fromArray(F, w, w3 + k);
                a3 = m.fma(u, a3);
                b3 = m.fma(v, b3);
            }
            a0.add(e0).intoArray(acc, 0);
            a1.add(e1).intoArray(acc, L);
            a2.add(e2).intoArray(acc, 2 * L);
            a3.add(e3).intoArray(acc, 3 * L);
            b0.add(f0).intoArray(acc, 4 * L);
            b1.add(f1).intoArray(acc, 5 * L);
            b2.add(f2).intoArray(acc, 6 * L);
            b3.add(f3).intoArray(acc, 7 * L);
            Simd.sumLanes4(acc, 0);
            Simd.sumLanes4(acc, 4 * L);
            for (int j = 0; j < 4; j++) {
                int wj = wOff + (i + j) * n;
                float sa = acc[j], sb = acc[4 * L + j];
                for (int t = k; t < n; t++) {
                    sa += w[wj + t] * x[xA + t];
                    sb += w[wj + t] * x[xB + t];
                }
                out[oA + i + j] = sa;
                out[oB + i + j] = sb;
            }
        }
        for (; i < rows; i++) {
            out[oA + i] = dot(w, wOff + i * n, x, xA, n);
            out[oB + i] = dot(w, wOff + i * n, x, xB, n);
        }
    }

    private static final ThreadLocal<float[]> DOTS_ACC = ThreadLocal.withInitial(() -> new float[8 * L]);

    /** y[yOff+i] += alpha * x[xOff+i]. */
    public static void axpy(float alpha, float[] x, int xOff, float[] y, int yOff, int n) {
        FloatVector a = FloatVector.broadcast(F, alpha);
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(F, x, xOff + i).fma(a, FloatVector.fromArray(F, y, yOff + i)).intoArray(y, yOff + i);
        }
        for (; i < n; i++) {
            y[yOff + i] += alpha * x[xOff + i];
        }
    }

    /** x[off+i] *= s. */
    public static void scale(float[] x, int off, int n, float s) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(F, x, off + i).mul(s).intoArray(x, off + i);
        }
        for (; i < n; i++) {
            x[off + i] *= s;
        }
    }

    /** RMSNorm(x) = x * rsqrt(mean(x^2) + eps) * w, over n = w.length elements. */
    public static void rmsnorm(float[] x, int xOff, float[] w, float eps, float[] out, int oOff) {
        int n = w.length;
        float inv = (float) (1.0 / Math.sqrt(dot(x, xOff, x, xOff, n) / n + eps));
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector.fromArray(F, x, xOff + i).mul(inv).mul(FloatVector.fromArray(F, w, i)).intoArray(out, oOff + i);
        }
        for (; i < n; i++) {
            out[oOff + i] = x[xOff + i] * inv * w[i];
        }
    }

    /** {@link #rmsnorm(float[], int, float[], float, float[], int)} of a whole vector. */
    public static void rmsnorm(float[] x, float[] w, float eps, float[] out) {
        rmsnorm(x, 0, w, eps, out, 0);
    }

    /** Elements per block of {@link #swiglu}: its exp values stay in L1. */
    private static final int SWIGLU_BLOCK = 256;

    /**
     * out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)), with {@link Exp} (the same bits in
     * every JIT tier, see Contract). out may alias gate or up.
     */
    public static void swiglu(float[] gate, int gOff, float[] up, int uOff, float[] out, int oOff, int n) {
        float[] e = new float[Math.min(n, SWIGLU_BLOCK)];
        for (int b = 0; b < n; b += SWIGLU_BLOCK) {
            int m = Math.min(SWIGLU_BLOCK, n - b);
            Exp.apply(gate, gOff + b, e, 0, m, -1f, 0f);
            int i = 0;
            for (; i + L <= m; i += L) {
                FloatVector g = FloatVector.fromArray(F, gate, gOff + b + i);
                g.div(FloatVector.fromArray(F, e, i).add(1f)).mul(FloatVector.fromArray(F, up, uOff + b + i))
                        .intoArray(out, oOff + b + i);
            }
            for (; i < m; i++) {
                out[oOff + b + i] = gate[gOff + b + i] / (1f + e[i]) * up[uOff + b + i];
            }
        }
    }

    /** {@link #swiglu(float[], int, float[], int, float[], int, int)} over whole arrays of out.length. */
    public static void swiglu(float[] gate, float[] up, float[] out) {
        swiglu(gate, 0, up, 0, out, 0, out.length);
    }

    /** In-place softmax of x[off .. off+n), max-subtracted for range safety (MAX is exact in any order). */
    public static void softmax(float[] x, int off, int n) {
        if (n <= 0) {
            return;
        }
        float max = Float.NEGATIVE_INFINITY;
        int i = 0;
        if (n >= L) {
            FloatVector m = FloatVector.broadcast(F, Float.NEGATIVE_INFINITY);
            for (; i + L <= n; i += L) {
                m = m.max(FloatVector.fromArray(F, x, off + i));
            }
            max = m.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            max = Math.max(max, x[off + i]);
        }
        // Exp gives the same bits in every JIT tier, and so does this sum: lane-wise adds, the fixed
        // lane tree, then the tail in index order (never reduceLanes, whose order the JIT picks).
        Exp.apply(x, off, x, off, n, 1f, -max);
        FloatVector acc = FloatVector.zero(F);
        for (i = 0; i + L <= n; i += L) {
            acc = acc.add(FloatVector.fromArray(F, x, off + i));
        }
        float sum = Simd.sumLanes(acc);
        for (; i < n; i++) {
            sum += x[off + i];
        }
        scale(x, off, n, 1f / sum);
    }

    /** First index of the maximum (ties go to the lower id, like torch.argmax): the greedy token. */
    public static int argmax(float[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }
}
