package dev.epic.transport;

/**
 * float8 e4m3fn arithmetic for the wire codec: a branch-light encoder (the activations of a whole
 * step go through it) and the decoder. Values: 1 sign, 4 exponent bits (bias 7), 3 mantissa bits,
 * no infinities, max 448, 0x7f/0xff NaN.
 */
final class E4m3 {
    private E4m3() {}

    static float decode(int code) {
        int sign = (code >> 7) & 1;
        int exp = (code >> 3) & 0xf;
        int man = code & 0x7;
        float v;
        if (exp == 0xf && man == 0x7) {
            v = Float.NaN;
        } else if (exp == 0) {
            v = Math.scalb(man / 8f, -6); // subnormal
        } else {
            v = Math.scalb(1f + man / 8f, exp - 7);
        }
        return sign == 1 ? -v : v;
    }

    /** Nearest code, ties to even mantissa; |v| >= 448 saturates to 448, NaN maps to 0x7f. */
    static int encode(float v) {
        if (Float.isNaN(v)) {
            return 0x7f;
        }
        int sign = (Float.floatToRawIntBits(v) >>> 24) & 0x80;
        float a = Math.abs(v);
        if (a >= 448f) {
            return sign | 0x7e;
        }
        int code;
        if (a < 0x1p-6f) {
            // subnormal grid of step 2^-9; rounding up to 8 yields the first normal code (8) exactly
            code = (int) Math.rint(a * 0x1p9f);
        } else {
            int e = Math.getExponent(a);
            int man = (int) Math.rint(Math.scalb(a, -e) * 8f - 8f);
            code = ((e + 7) << 3) + man; // man == 8 carries into the exponent
        }
        return sign | Math.min(code, 0x7e);
    }
}
