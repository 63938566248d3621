package dev.epic.text.sampling;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The vocab-wide passes of sampling (max, exp) over 129k logits. The max is vectorized (MAX is exact in
 * any order); the exp pass stays scalar so that sampling is deterministic in every JIT tier.
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
     * <p>Scalar on purpose: the Vector API's lane-wise EXP and reduceLanes(ADD) round differently in
     * interpreted and compiled code, so a seeded draw could change with JIT warm-up. Math.exp uses one
     * stub in every tier, and the sum runs in index order, so the same logits always give the same token.
     */
    static double expWeights(float[] l, int n, float max, float invT, float[] w) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            float x = (float) Math.exp((l[i] - max) * invT);
            w[i] = x;
            sum += x;
        }
        return sum;
    }
}
