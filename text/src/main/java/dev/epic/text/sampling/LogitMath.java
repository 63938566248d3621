package dev.epic.text.sampling;

import dev.epic.kernels.Exp;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vocab-wide passes of sampling (max, exp) over 129k logits, vectorized and deterministic in every
 * JIT tier (MAX is exact in any order; for exp see {@link #expWeights}).
 */
final class LogitMath {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private LogitMath() {
    }

    /** max of a[0..n); NaN if any element is NaN. */
    static float max(float[] a, int n) {
        int i = 0;
        float m = Float.NEGATIVE_INFINITY;
        if (n >= S.length()) {
            FloatVector acc = FloatVector.broadcast(S, Float.NEGATIVE_INFINITY);
            for (int bound = S.loopBound(n); i < bound; i += S.length()) {
                acc = acc.lanewise(VectorOperators.MAX, FloatVector.fromArray(S, a, i));
            }
            m = acc.reduceLanes(VectorOperators.MAX);
        }
        for (; i < n; i++) {
            m = Math.max(m, a[i]);
        }
        return m;
    }

    /**
     * w[i] = exp((l[i] - max) * invT) for i in [0, n); returns the sum. Requires max finite.
     *
     * <p>The same token for the same logits in every JIT tier: the scaled differences are lane-wise
     * IEEE operations, the exponentials come from {@link Exp} (built from add, multiply and FMA only;
     * the Vector API's own EXP rounds differently interpreted and compiled), and the sum runs in double
     * in four fixed interleaved partial sums (a scalar in-order sum and Math.exp took 0.8 ms a token).
     */
    static double expWeights(float[] l, int n, float max, float invT, float[] w) {
        int i = 0;
        for (int bound = S.loopBound(n); i < bound; i += S.length()) {
            FloatVector.fromArray(S, l, i).sub(max).mul(invT).intoArray(w, i);
        }
        for (; i < n; i++) {
            w[i] = (l[i] - max) * invT;
        }
        Exp.apply(w, 0, w, 0, n, 1f, 0f);
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        i = 0;
        for (; i + 4 <= n; i += 4) {
            s0 += w[i];
            s1 += w[i + 1];
            s2 += w[i + 2];
            s3 += w[i + 3];
        }
        double sum = (s0 + s1) + (s2 + s3);
        for (; i < n; i++) {
            sum += w[i];
        }
        return sum;
    }
}
