package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
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
     * L float8_e4m3fn codes at byte offset off, times {@code factor} = blockScale * 2^120. Moving the
     * 7 magnitude bits up 20 places gives an fp32 equal to the e4m3 value times 2^-120 (normals and
     * subnormals), so one multiply by factor yields the reference weight e4m3 * scale, rounded once.
     * Codes 0x7f/0xff are NaN.
     */
    static FloatVector fp8(MemorySegment seg, long off, float factor) {
        ByteVector b = ByteVector.fromMemorySegment(B, seg, off, LE);
        IntVector i = (IntVector) b.convertShape(VectorOperators.B2I, I, 0);
        IntVector mag = i.and(0x7f);
        FloatVector v = mag.lanewise(VectorOperators.LSHL, 20).or(i.and(0x80000000)).reinterpretAsFloats().mul(factor);
        return v.blend(NAN, mag.compare(VectorOperators.EQ, 0x7f).cast(F));
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
