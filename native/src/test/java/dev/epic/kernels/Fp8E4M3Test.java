package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class Fp8E4M3Test {
    @Test
    void decodeTableHasTheFormatsLandmarks() {
        assertEquals(448f, Fp8E4M3.decode(0x7e));
        assertEquals(-448f, Fp8E4M3.decode(0xfe));
        assertEquals(0x1p-9f, Fp8E4M3.decode(1)); // smallest subnormal
        assertEquals(0x1p-6f, Fp8E4M3.decode(8)); // smallest normal
        assertTrue(Float.isNaN(Fp8E4M3.decode(0x7f)));
        assertTrue(Float.isNaN(Fp8E4M3.decode(0xff)));
    }

    @Test
    void encoderIsTheNearestCodeForEveryValueClass() {
        SplittableRandom rnd = new SplittableRandom(3);
        for (int i = 0; i < 200_000; i++) {
            float v = (float) (rnd.nextDouble(-1, 1) * Math.pow(2, rnd.nextInt(-12, 10)));
            assertEquals(bruteForce(v), Fp8E4M3.encode(v), "value " + v);
        }
        for (int c = 0; c < 0x7f; c++) {
            float exact = Fp8E4M3.decode(c);
            assertEquals(c, Fp8E4M3.encode(exact), "exact code " + c);
            assertEquals(0x80 | c, Fp8E4M3.encode(-exact), "exact code -" + c);
            if (c < 0x7e) {
                float mid = (exact + Fp8E4M3.decode(c + 1)) / 2; // a tie goes to the even code
                assertEquals(bruteForce(mid), Fp8E4M3.encode(mid), "midpoint after " + c);
            }
        }
        assertEquals(0x7e, Fp8E4M3.encode(1e9f));
        assertEquals(0xfe, Fp8E4M3.encode(-500f));
        assertEquals(0x7f, Fp8E4M3.encode(Float.NaN));
    }

    /** Nearest code by searching the whole table (ties to the even code), saturating at 448. */
    private static int bruteForce(float v) {
        int sign = v < 0 || (v == 0 && 1 / v < 0) ? 0x80 : 0;
        float a = Math.abs(v);
        if (a >= 448f) {
            return sign | 0x7e;
        }
        int best = 0;
        float bestErr = Float.MAX_VALUE;
        for (int c = 0; c <= 0x7e; c++) {
            float err = Math.abs(Fp8E4M3.decode(c) - a);
            if (err < bestErr || (err == bestErr && (c & 1) == 0)) {
                best = c;
                bestErr = err;
            }
        }
        return sign | best;
    }
}
