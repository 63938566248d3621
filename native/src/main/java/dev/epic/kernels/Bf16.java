package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.S;
import static jdk.incubator.vector.VectorOperators.GT;
import static jdk.incubator.vector.VectorOperators.I2S;
import static jdk.incubator.vector.VectorOperators.LSHR;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;

/**
 * bf16 (brain float16) conversion: a bf16 value is the top 16 bits of an fp32 bit pattern, held in a
 * Java {@code short}. The array forms give the scalar forms' bits element for element.
 */
public final class Bf16 {
    private Bf16() {}

    /** The fp32 with bits (bits &amp; 0xffff) &lt;&lt; 16: exact. */
    public static float widen(short bits) {
        return Float.intBitsToFloat(bits << 16);
    }

    /**
     * x rounded to bf16, to nearest with ties to even (as torch's {@code .to(torch.bfloat16)} and
     * VCVTNEPS2BF16): bits + 0x7fff + (bit 16 of bits), top half. This carries into the exponent where
     * it should, so finite values at or past the midpoint of the largest bf16 and 2^128 become
     * infinities, subnormals round like normals, and infinities stay. A NaN keeps its sign and top
     * payload bits and is made quiet (the carry could turn it into an infinity or flip its sign).
     */
    public static short round(float x) {
        int b = Float.floatToRawIntBits(x);
        if ((b & 0x7fffffff) > 0x7f800000) {
            return (short) ((b >>> 16) | 0x40);
        }
        return (short) ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16);
    }

    /** dst[dstOff + i] = {@link #round(float)}(src[srcOff + i]) for i &lt; n. */
    public static void round(float[] src, int srcOff, short[] dst, int dstOff, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            IntVector b = FloatVector.fromArray(F, src, srcOff + i).reinterpretAsInts();
            IntVector top = b.lanewise(LSHR, 16);
            IntVector r = b.add(0x7fff).add(top.and(1)).lanewise(LSHR, 16)
                    .blend(top.or(0x40), b.and(0x7fffffff).compare(GT, 0x7f800000));
            ((ShortVector) r.convertShape(I2S, S, 0)).intoArray(dst, dstOff + i); // I2S keeps the low 16 bits
        }
        for (; i < n; i++) {
            dst[dstOff + i] = round(src[srcOff + i]);
        }
    }

    /** dst[dstOff + i] = {@link #widen(short)}(src[srcOff + i]) for i &lt; n. */
    public static void widen(short[] src, int srcOff, float[] dst, int dstOff, int n) {
        int i = 0;
        for (; i + L <= n; i += L) {
            Simd.bf16(src, srcOff + i).intoArray(dst, dstOff + i);
        }
        for (; i < n; i++) {
            dst[dstOff + i] = widen(src[srcOff + i]);
        }
    }
}
