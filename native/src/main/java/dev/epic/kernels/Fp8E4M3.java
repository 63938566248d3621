package dev.epic.kernels;

/** float8_e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities, 0x7f/0xff NaN). */
public final class Fp8E4M3 {
    private static final int MAX_CODE = 0x7e; // 448; 0x7f is NaN
    private static final float[] TABLE = new float[256];

    static {
        for (int code = 0; code < 256; code++) {
            TABLE[code] = decodeSlow(code);
        }
    }

    private Fp8E4M3() {}

    /** The exact value of an e4m3fn code (0..255). */
    public static float decode(int code) {
        return TABLE[code & 0xff];
    }

    /** A copy of the 256-entry decode table, for kernels that gather from it. */
    public static float[] table() {
        return TABLE.clone();
    }

    private static float decodeSlow(int code) {
        int sign = (code >> 7) & 1;
        int exp = (code >> 3) & 0xf;
        int man = code & 0x7;
        float v;
        if (exp == 0xf && man == 0x7) {
            v = Float.NaN;
        } else if (exp == 0) {
            v = man / 8f * (float) Math.pow(2, -6); // subnormal
        } else {
            v = (1f + man / 8f) * (float) Math.pow(2, exp - 7);
        }
        return sign == 1 ? -v : v;
    }

    /**
     * Nearest e4m3fn code for v (round half to even, saturating at +-448, NaN to 0x7f), by bit
     * manipulation: synth quantises every weight and the fp8 wire codec every activation with it.
     */
    public static int encode(float v) {
        if (Float.isNaN(v)) {
            return 0x7f;
        }
        int bits = Float.floatToRawIntBits(v);
        int sign = (bits >>> 24) & 0x80;
        float a = Math.abs(v);
        int code;
        if (a < 0x1p-6f) {
            // subnormals are multiples of 2^-9; Math.rint rounds half to even (and 8 is the first normal)
            code = (int) Math.rint(a * 0x1p9f);
        } else {
            int abs = bits & 0x7fffffff;
            // keep 3 of float's 23 mantissa bits, rounding half to even; a carry moves into the exponent
            int rounded = abs + (1 << 19) - 1 + ((abs >>> 20) & 1);
            int exponent = (rounded >>> 23) - 127 + 7;
            code = exponent > 15 ? MAX_CODE + 1 : (exponent << 3) | ((rounded >>> 20) & 0x7);
        }
        return sign | Math.min(code, MAX_CODE);
    }
}
