package dev.epic.kernels;

/** float8_e4m3fn (1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities, 0x7f/0xff NaN). */
public final class Fp8E4M3 {
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

    /** Nearest e4m3fn code for v (round half to even, saturating at +-448); used by synth and quantisers. */
    public static int encode(float v) {
        if (Float.isNaN(v)) {
            return 0x7f;
        }
        int sign = v < 0 || (v == 0 && 1 / v < 0) ? 0x80 : 0;
        float a = Math.abs(v);
        if (a >= 448f) {
            return sign | 0x7e;
        }
        int best = 0;
        float bestErr = Float.MAX_VALUE;
        for (int c = 0; c <= 0x7e; c++) {
            float err = Math.abs(TABLE[c] - a);
            if (err < bestErr || (err == bestErr && (c & 1) == 0)) {
                best = c;
                bestErr = err;
            }
        }
        return sign | best;
    }
}
