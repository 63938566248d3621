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
