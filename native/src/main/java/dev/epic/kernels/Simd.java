package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Vector species and the in-register widening of each weight dtype to fp32 lanes. All species have
 * the same lane count L as the preferred float species (16 with AVX-512), so one weight vector of any
 * dtype lines up with one fp32 activation vector.
 */
final class Simd {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int L = F.length();
    static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    static final VectorSpecies<Short> S = VectorSpecies.of(short.class, VectorShape.forBitSize(L * 16));
    static final VectorSpecies<Byte> B = VectorSpecies.of(byte.class, VectorShape.forBitSize(L * 8));
    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;

    private static final FloatVector NAN = FloatVector.broadcast(F, Float.NaN);

    private Simd() {}

    /** L bf16 values at byte offset off: bf16 is the top half of an fp32, so widening is a shift. */
    static FloatVector bf16(MemorySegment seg, long off) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, off, LE);
        IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * L IEEE half values at byte offset off. Moving the 15 magnitude bits up 13 places gives an fp32
     * with the half's mantissa and an exponent 112 too small; multiplying by 2^112 fixes normals and
     * subnormals alike (exact). Inf/NaN (exponent all ones) get the fp32 all-ones exponent instead.
     */
    static FloatVector f16(MemorySegment seg, long off) {
        ShortVector s = ShortVector.fromMemorySegment(S, seg, off, LE);
        IntVector i = (IntVector) s.convertShape(VectorOperators.S2I, I, 0);
        IntVector mag = i.and(0x7fff);
        IntVector bits = mag.lanewise(VectorOperators.LSHL, 13);
        FloatVector v = bits.reinterpretAsFloats().mul(0x1p112f);
        FloatVector special = bits.or(0x7f800000).reinterpretAsFloats();
        v = v.blend(special, mag.compare(VectorOperators.GE, 0x7c00).cast(F));
        return v.reinterpretAsInts().or(i.and(0x80000000)).reinterpretAsFloats();
    }

    /**
     * L float8_e4m3fn codes at byte offset off as fp32 values e4m3 * 2^-120: the byte is sign-extended,
     * so after a shift by 20 bit 31 is the sign and bits 20..26 the 7 magnitude bits, i.e. an fp32 with
     * the code's exponent and mantissa and an exponent 120 too small (normals and subnormals alike,
     * exact). Callers multiply by blockScale * 2^120, either per weight or folded into x. Codes
     * 0x7f/0xff (NaN) are not handled here: see {@link #fp8WithNaN}.
     */
    static FloatVector fp8Raw(MemorySegment seg, long off) {
        ByteVector b = ByteVector.fromMemorySegment(B, seg, off, LE);
        IntVector i = (IntVector) b.convertShape(VectorOperators.B2I, I, 0);
        return i.lanewise(VectorOperators.LSHL, 20).and(0x87F00000).reinterpretAsFloats();
    }

    /** {@link #fp8Raw} times factor (= blockScale * 2^120: the reference weight, rounded once), NaN codes as NaN. */
    static FloatVector fp8WithNaN(MemorySegment seg, long off, float factor) {
        FloatVector raw = fp8Raw(seg, off);
        VectorMask<Float> nan = raw.reinterpretAsInts().and(0x7ff00000).compare(VectorOperators.EQ, 0x07F00000).cast(F);
        return raw.mul(factor).blend(NAN, nan);
    }

    /** Whether any of the n e4m3 codes at off is a NaN code (0x7f / 0xff). */
    static boolean anyFp8NaN(MemorySegment seg, long off, long n) {
        VectorSpecies<Byte> wide = ByteVector.SPECIES_PREFERRED;
        long i = 0;
        for (; i + wide.length() <= n; i += wide.length()) {
            if (ByteVector.fromMemorySegment(wide, seg, off + i, LE).and((byte) 0x7f)
                    .compare(VectorOperators.EQ, (byte) 0x7f).anyTrue()) {
                return true;
            }
        }
        for (; i < n; i++) {
            if ((seg.get(java.lang.foreign.ValueLayout.JAVA_BYTE, off + i) & 0x7f) == 0x7f) {
                return true;
            }
        }
        return false;
    }

    /** L int8 codes at byte offset off, as floats. */
    static FloatVector i8(MemorySegment seg, long off) {
        ByteVector b = ByteVector.fromMemorySegment(B, seg, off, LE);
        return (FloatVector) b.convertShape(VectorOperators.B2F, F, 0);
    }

    /** Sum of the lanes of the given accumulators. */
    static float sum(FloatVector a, FloatVector b, FloatVector c, FloatVector d) {
        return a.add(b).add(c.add(d)).reduceLanes(VectorOperators.ADD);
    }
}
