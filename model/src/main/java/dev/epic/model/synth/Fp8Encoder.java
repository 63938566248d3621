package dev.epic.model.synth;

import dev.epic.kernels.Fp8E4M3;

/** Fast nearest float8_e4m3fn code (ties to even code, saturating at +-448) by binary search over the code table. */
final class Fp8Encoder {
    /** Values of the positive codes 0x00..0x7e, increasing. */
    private static final float[] POSITIVE = new float[0x7f];

    static {
        for (int code = 0; code < POSITIVE.length; code++) {
            POSITIVE[code] = Fp8E4M3.decode(code);
        }
    }

    private Fp8Encoder() {}

    static byte encode(float v) {
        int sign = v < 0 ? 0x80 : 0;
        float a = Math.abs(v);
        int lo = 0;
        int hi = POSITIVE.length - 1;
        if (a >= POSITIVE[hi]) {
            return (byte) (sign | hi);
        }
        while (hi - lo > 1) { // invariant: POSITIVE[lo] <= a < POSITIVE[hi]
            int mid = (lo + hi) >>> 1;
            if (POSITIVE[mid] <= a) {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        float dLo = a - POSITIVE[lo];
        float dHi = POSITIVE[hi] - a;
        int code = dLo < dHi ? lo : dHi < dLo ? hi : (lo % 2 == 0 ? lo : hi);
        return (byte) (sign | code);
    }
}
