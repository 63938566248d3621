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

    /**
     * out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)). Scalar exp on purpose: the Vector
     * API's lane-wise EXP rounds differently in interpreted and compiled code, Math.exp does not, and
     * results must not depend on JIT warm-up (see Contract).
     */
    public static void swiglu(float[] gate, int gOff, float[] up, int uOff, float[] out, int oOff, int n) {
        for (int i = 0; i < n; i++) {
            float g = gate[gOff + i];
            out[oOff + i] = g / (1f + (float) Math.exp(-g)) * up[uOff + i];
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
        // exp and the sum stay scalar and in index order: the same bits in every JIT tier (see swiglu).
        float sum = 0f;
        for (i = 0; i < n; i++) {
            float e = (float) Math.exp(x[off + i] - max);
            x[off + i] = e;
            sum += e;
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
