package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class ExpTest {
    private static final float LN_FLT_MIN = -87.33654f;
    private static final float LN_FLT_MAX = 88.72283f;

    /** Vector lanes and scalar tail give the same bits, so a value's exp does not depend on where it falls. */
    @Test
    void vectorLanesEqualTheScalarSteps() {
        SplittableRandom rnd = new SplittableRandom(7);
        int n = 4096 + 5;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (rnd.nextDouble() * 220 - 110);
        }
        x[0] = Float.NaN;
        x[1] = Float.POSITIVE_INFINITY;
        x[2] = Float.NEGATIVE_INFINITY;
        x[3] = LN_FLT_MIN;
        x[4] = LN_FLT_MAX;
        x[5] = -0f;
        for (float[] ab : new float[][] {{1f, 0f}, {-1f, 0f}, {1f, -3.5f}}) {
            float[] y = new float[n];
            Exp.apply(x, 0, y, 0, n, ab[0], ab[1]);
            for (int i = 0; i < n; i++) {
                float want = Exp.scalar(Math.fma(x[i], ab[0], ab[1]));
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(y[i]),
                        "exp(" + x[i] + " * " + ab[0] + " + " + ab[1] + "): lane " + y[i] + ", scalar " + want);
            }
        }
    }

    /** Within 2 ulp of the correctly rounded exp over the whole normal range. */
    @Test
    void withinTwoUlpOfMathExp() {
        SplittableRandom rnd = new SplittableRandom(11);
        int n = 200_000;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            // Dense near 0 (softmax's range) and spread over the rest.
            x[i] = i % 2 == 0 ? (float) (rnd.nextDouble() * 40 - 30)
                    : (float) (LN_FLT_MIN + rnd.nextDouble() * (LN_FLT_MAX - LN_FLT_MIN));
        }
        float[] y = new float[n];
        Exp.apply(x, 0, y, 0, n, 1f, 0f);
        double worst = 0;
        for (int i = 0; i < n; i++) {
            float want = (float) Math.exp(x[i]);
            double ulps = Math.abs((double) y[i] - want) / Math.ulp(want);
            worst = Math.max(worst, ulps);
            assertTrue(ulps <= 2, "exp(" + x[i] + ") = " + y[i] + ", want " + want + " (" + ulps + " ulp)");
        }
        assertTrue(worst > 0, "a polynomial that never rounds differently from Math.exp is suspicious");
    }

    @Test
    void rangeEndsAndSpecialValues() {
        assertEquals(1f, Exp.scalar(0f));
        assertEquals(1f, Exp.scalar(-0f));
        assertEquals((float) Math.E, Exp.scalar(1f), Math.ulp((float) Math.E));
        assertEquals(0f, Exp.scalar(-88f));
        assertEquals(0f, Exp.scalar(Float.NEGATIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, Exp.scalar(89f));
        assertEquals(Float.POSITIVE_INFINITY, Exp.scalar(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(Exp.scalar(Float.NaN)));
        float atMin = (float) Math.exp(LN_FLT_MIN); // the float nearest ln(FLT_MIN): just above FLT_MIN
        assertEquals(atMin, Exp.scalar(LN_FLT_MIN), 2 * Math.ulp(atMin));
        assertTrue(Exp.scalar(88.7f) > 3.2e38f && Exp.scalar(88.7f) < Float.POSITIVE_INFINITY);
    }
}
