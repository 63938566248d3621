package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * exp(x) in fp32 for softmax and SiLU, sixteen lanes at a time, within 2 ulp of the correctly rounded
 * value. The Vector API's own lane-wise EXP rounds differently interpreted and compiled, and results
 * must not depend on JIT warm-up (see {@link Contract}); scalar Math.exp is tier-stable but costs
 * ~15 ns a call, which made softmax and SwiGLU a tenth of a batch-1 decode step. This is the classic
 * Cephes range reduction built from IEEE add, multiply and fused multiply-add only, which every tier
 * computes bit for bit the same, and {@link #scalar} repeats the same steps for the tail lanes:
 * <pre>
 *   n = round(x / ln 2)                       (the 1.5 * 2^23 trick: round-to-nearest-even by an add)
 *   r = x - n ln2_hi - n ln2_lo               (|r| &lt;= ln 2 / 2, two FMAs)
 *   e^r = 1 + r + r^2 P(r)                    (degree-5 P, Cephes expf)
 *   e^x = e^r * 2^n1 * 2^n2                   (n1 + n2 = n, each power built in the exponent bits)
 * </pre>
 * Below ln(FLT_MIN) the result is 0 (no subnormals), above ln(FLT_MAX) +infinity; NaN stays NaN.
 */
public final class Exp {
    private static final float LOG2E = 1.44269504088896341f;
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** 1.5 * 2^23: adding it rounds a float in (-2^22, 2^22) to an integer, left in the low mantissa bits. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = 0x4B400000;
    private static final float MAX_ARG = 88.72283905206835f;  // ln(FLT_MAX)
    private static final float MIN_ARG = -87.33654475055310f; // ln(FLT_MIN)
    private static final float P0 = 1.9875691500e-4f;
    private static final float P1 = 1.3981999507e-3f;
    private static final float P2 = 8.3334519073e-3f;
    private static final float P3 = 4.1665795894e-2f;
    private static final float P4 = 1.6666665459e-1f;
    private static final float P5 = 5.0000001201e-1f;
    private static final FloatVector NEG_LN2_HI = FloatVector.broadcast(F, -LN2_HI);
    private static final FloatVector V_P2 = FloatVector.broadcast(F, P2);
    private static final FloatVector V_P3 = FloatVector.broadcast(F, P3);
    private static final FloatVector V_P4 = FloatVector.broadcast(F, P4);
    private static final FloatVector V_P5 = FloatVector.broadcast(F, P5);

    private Exp() {}

    /**
     * dst[dOff + i] = exp(fma(x[xOff + i], a, b)) for i in [0, n): a = 1, b = -max gives softmax's
     * exp(x - max) (exactly x - max), a = -1, b = 0 gives SiLU's exp(-x). dst may be x.
     */
    public static void apply(float[] x, int xOff, float[] dst, int dOff, int n, float a, float b) {
        int i = 0;
        for (; i + L <= n; i += L) {
            FloatVector arg = FloatVector.fromArray(F, x, xOff + i).fma(a, b);
            // Clamped so that 2^n stays a normal float; the two ends are patched after.
            FloatVector c = arg.max(MIN_ARG).min(MAX_ARG);
            FloatVector t = c.fma(LOG2E, ROUNDER);
            FloatVector n2 = t.sub(ROUNDER);
            FloatVector r = n2.fma(NEG_LN2_HI, c).add(n2.mul(-LN2_LO));
            FloatVector p = r.fma(P0, P1).fma(r, V_P2).fma(r, V_P3).fma(r, V_P4).fma(r, V_P5);
            FloatVector er = p.mul(r.mul(r)).add(r).add(1f);
            // 2^n as 2^k1 * 2^(n - k1) (k1 = n >> 1): n runs from -126 to 128, beyond one exponent field.
            IntVector k = t.reinterpretAsInts().sub(ROUNDER_BITS);
            IntVector k1 = k.lanewise(VectorOperators.ASHR, 1);
            // Written out, not a helper: see "No vector crosses a call" in the README's kernel notes.
            FloatVector y = er.mul(k1.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats())
                    .mul(k.sub(k1).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            VectorMask<Float> over = arg.compare(VectorOperators.GT, MAX_ARG);
            VectorMask<Float> under = arg.compare(VectorOperators.LT, MIN_ARG);
            y.blend(Float.POSITIVE_INFINITY, over).blend(0f, under).intoArray(dst, dOff + i);
        }
        for (; i < n; i++) {
            dst[dOff + i] = scalar(Math.fma(x[xOff + i], a, b));
        }
    }

    /** The same steps as {@link #apply} for one value, so a lane gives the same bits wherever it falls. */
    public static float scalar(float arg) {
        if (arg > MAX_ARG) {
            return Float.POSITIVE_INFINITY;
        }
        if (arg < MIN_ARG) {
            return 0f;
        }
        float c = Math.min(Math.max(arg, MIN_ARG), MAX_ARG); // NaN passes through, as in the vector max/min
        float t = Math.fma(c, LOG2E, ROUNDER);
        float n2 = t - ROUNDER;
        float r = Math.fma(n2, -LN2_HI, c) + n2 * -LN2_LO;
        float p = Math.fma(Math.fma(Math.fma(Math.fma(Math.fma(r, P0, P1), r, P2), r, P3), r, P4), r, P5);
        float er = p * (r * r) + r + 1f;
        int n = Float.floatToRawIntBits(t) - ROUNDER_BITS;
        int n1 = n >> 1;
        return er * Float.intBitsToFloat((n1 + 127) << 23) * Float.intBitsToFloat((n - n1 + 127) << 23);
    }
}
