package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** bf16 rounding against an exact reference, and the array forms against the scalar ones. */
class Bf16Test {
    /** Low halves that decide the rounding: zero, the ties and their neighbours, the extremes. */
    private static final int[] LOW = {0x0000, 0x0001, 0x0002, 0x3fff, 0x4000, 0x7ffe, 0x7fff, 0x8000, 0x8001, 0x8002,
        0xbfff, 0xc000, 0xfffe, 0xffff};

    private static final BigDecimal TWO_128 = new BigDecimal(BigInteger.ONE.shiftLeft(128));

    /**
     * Round to nearest even by exact arithmetic: x lies between its truncation lo and the next bf16 up
     * in magnitude hi (adjacent patterns are adjacent values, subnormals included); past the largest
     * finite bf16, hi is +-2^128 (the unbounded-exponent rule of IEEE 754), which rounds to infinity.
     */
    private static int reference(float x) {
        int bits = Float.floatToRawIntBits(x);
        int lo = bits >>> 16, hi = lo + 1;
        if ((bits & 0xffff) == 0) {
            return lo;
        }
        BigDecimal ax = new BigDecimal(Math.abs((double) x));
        BigDecimal alo = new BigDecimal(Math.abs((double) Float.intBitsToFloat(lo << 16)));
        BigDecimal ahi = (hi & 0x7fff) == 0x7f80 ? TWO_128 : new BigDecimal(Math.abs((double) Float.intBitsToFloat(hi << 16)));
        int c = ax.subtract(alo).compareTo(ahi.subtract(ax));
        return c < 0 || (c == 0 && (lo & 1) == 0) ? lo : hi;
    }

    private static void checkRound(float x) {
        int bits = Float.floatToRawIntBits(x);
        int got = Bf16.round(x) & 0xffff;
        if (Float.isNaN(x)) {
            assertEquals((bits >>> 16) | 0x40, got, "NaN " + Integer.toHexString(bits));
            assertTrue(Float.isNaN(Bf16.widen((short) got)));
        } else {
            assertEquals(reference(x), got, () -> "round(" + x + " = 0x" + Integer.toHexString(bits) + ")");
        }
    }

    /** Every sign, exponent and top mantissa, with each deciding low half; then random patterns. */
    @Test
    void roundsToNearestEven() {
        for (int top = 0; top < 0x10000; top++) {
            for (int low : LOW) {
                checkRound(Float.intBitsToFloat(top << 16 | low));
            }
        }
        SplittableRandom rnd = new SplittableRandom(5);
        for (int i = 0; i < 1_000_000; i++) {
            checkRound(Float.intBitsToFloat(rnd.nextInt()));
        }
    }

    @Test
    void specialValues() {
        assertEquals(0x0000, Bf16.round(0f) & 0xffff);
        assertEquals(0x8000, Bf16.round(-0f) & 0xffff);
        assertEquals(0x7f80, Bf16.round(Float.POSITIVE_INFINITY) & 0xffff);
        assertEquals(0xff80, Bf16.round(Float.NEGATIVE_INFINITY) & 0xffff);
        assertEquals(0x7f80, Bf16.round(Float.MAX_VALUE) & 0xffff, "overflows to infinity");
        assertEquals(0xff80, Bf16.round(-Float.MAX_VALUE) & 0xffff, "overflows to -infinity");
        assertEquals(0x7f7f, Bf16.round(Float.intBitsToFloat(0x7f7f7fff)) & 0xffff, "below the midpoint stays finite");
        assertEquals(0x7f80, Bf16.round(Float.intBitsToFloat(0x7f7f8000)) & 0xffff, "the midpoint ties to even: infinity");
        assertEquals(0x0000, Bf16.round(Float.MIN_VALUE) & 0xffff, "the smallest subnormal rounds to zero");
        assertEquals(0x0001, Bf16.round(Float.intBitsToFloat(0x00008001)) & 0xffff, "past the midpoint: up");
        assertEquals(0x0080, Bf16.round(Float.intBitsToFloat(0x007fc000)) & 0xffff, "subnormal up to the least normal");
        assertEquals(0x3f80, Bf16.round(1f + 0x1p-8f) & 0xffff, "tie to even (down)");
        assertEquals(0x3f82, Bf16.round(1f + 3 * 0x1p-8f) & 0xffff, "tie to even (up)");
        assertEquals(0x7fc0, Bf16.round(Float.NaN) & 0xffff);
        assertEquals(0x7fc0, Bf16.round(Float.intBitsToFloat(0x7f800001)) & 0xffff, "a signalling NaN with a low payload");
        assertEquals(0xffc1, Bf16.round(Float.intBitsToFloat(0xff81ffff)) & 0xffff, "sign and top payload kept");
        assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(Bf16.widen((short) 0x8000)));
    }

    /** Widening is the top half; rounding a widened value gives it back (every non-NaN pattern). */
    @Test
    void widenIsExactAndRoundTrips() {
        for (int s = 0; s < 0x10000; s++) {
            float w = Bf16.widen((short) s);
            assertEquals(s << 16, Float.floatToRawIntBits(w), "widen " + Integer.toHexString(s));
            assertEquals(s << 16, Float.floatToRawIntBits(Bf16Matrix.widen((short) s)));
            if (!Float.isNaN(w)) {
                assertEquals(s, Bf16.round(w) & 0xffff, "round trip " + Integer.toHexString(s));
            }
        }
    }

    /** The array forms give the scalar forms' bits, at odd offsets and lengths (vector body and tail). */
    @Test
    void arraysEqualScalars() {
        int n = 0x10000 * LOW.length;
        float[] src = new float[n + 3];
        for (int top = 0; top < 0x10000; top++) {
            for (int j = 0; j < LOW.length; j++) {
                src[3 + top * LOW.length + j] = Float.intBitsToFloat(top << 16 | LOW[j]);
            }
        }
        SplittableRandom rnd = new SplittableRandom(9);
        for (int i = 0; i < 3; i++) {
            src[i] = Float.intBitsToFloat(rnd.nextInt());
        }
        for (int len : new int[] {n, 1, Simd.L - 1, Simd.L, Simd.L + 1, 3 * Simd.L + 5}) {
            short[] dst = new short[len + 2];
            Bf16.round(src, 3, dst, 2, len);
            for (int i = 0; i < len; i++) {
                assertEquals(Bf16.round(src[3 + i]), dst[2 + i], "round at " + i);
            }
            float[] back = new float[len + 1];
            Bf16.widen(dst, 2, back, 1, len);
            for (int i = 0; i < len; i++) {
                assertEquals(Float.floatToRawIntBits(Bf16.widen(dst[2 + i])), Float.floatToRawIntBits(back[1 + i]),
                        "widen at " + i);
            }
        }
        short[] all = new short[0x10000 + 1];
        for (int s = 0; s < 0x10000; s++) {
            all[1 + s] = (short) s;
        }
        float[] wide = new float[0x10000];
        Bf16.widen(all, 1, wide, 0, 0x10000);
        for (int s = 0; s < 0x10000; s++) {
            assertEquals(s << 16, Float.floatToRawIntBits(wide[s]), "widen " + Integer.toHexString(s));
        }
    }
}
