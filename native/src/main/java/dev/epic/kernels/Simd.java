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
 * Vector species, the widening helpers of the rarer dtypes (f16, fp8 with NaN codes, bf16 arrays) and
 * the fixed lane-sum tree. All species have the same lane count L as the preferred float species (16 with
 * AVX-512), so one weight vector of any dtype lines up with one fp32 activation vector.
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
        // An FMA, not a multiply: f16 subnormals are fp32 subnormals here, and an x86 multiply with a
        // subnormal input takes a slow path (the same bits; 2 times faster with 1 in 8 weights tiny).
        FloatVector v = bits.reinterpretAsFloats().fma(0x1p112f, 0f);
        FloatVector special = bits.or(0x7f800000).reinterpretAsFloats();
        v = v.blend(special, mag.compare(VectorOperators.GE, 0x7c00).cast(F));
        return v.reinterpretAsInts().or(i.and(0x80000000)).reinterpretAsFloats();
    }

    /**
     * L bf16 values (the top halves of fp32 bit patterns) at a[off ..] as fp32: exact. Keep it under
     * MaxInlineSize (35 bytes of bytecode; it is 33): C2 then inlines it whatever the caller's size, so
     * the vector is never boxed (PrintInlining: inlined at every site of the bf16 LatentAttention kernels).
     */
    static FloatVector bf16(short[] a, int off) {
        return ((IntVector) ShortVector.fromArray(S, a, off).convertShape(VectorOperators.S2I, I, 0))
                .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats();
    }

    /**
     * L float8_e4m3fn codes at byte offset off as fp32 values e4m3 * 2^-120: the byte is sign-extended,
     * so after a shift by 20 bit 31 is the sign and bits 20..26 the 7 magnitude bits, i.e. an fp32 with
     * the code's exponent and mantissa and an exponent 120 too small (normals and subnormals alike,
     * exact). Callers scale by blockScale * 2^120 per weight (the reference weight, rounded once), by an
     * FMA with -0 rather than a multiply (see Fp8BlockMatrix#NEG0). Codes 0x7f/0xff (NaN) are not
     * handled here: see {@link #fp8WithNaN}.
     */
    static FloatVector fp8Raw(MemorySegment seg, long off) {
        return widenFp8(ByteVector.fromMemorySegment(B, seg, off, LE));
    }

    private static FloatVector widenFp8(ByteVector b) {
        return ((IntVector) b.convertShape(VectorOperators.B2I, I, 0)).lanewise(VectorOperators.LSHL, 20).and(0x87F00000)
                .reinterpretAsFloats();
    }

    /** {@link #fp8Raw} times factor (= blockScale * 2^120: the reference weight, rounded once), NaN codes as NaN. */
    static FloatVector fp8WithNaN(MemorySegment seg, long off, float factor) {
        FloatVector raw = fp8Raw(seg, off);
        VectorMask<Float> nan = raw.reinterpretAsInts().and(0x7ff00000).compare(VectorOperators.EQ, 0x07F00000).cast(F);
        return raw.fma(factor, -0f).blend(NAN, nan);
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

    /**
     * Sum of the L floats a[off ..] by a fixed pairwise tree: while n > 1, n /= 2 and
     * a[i] = a[i] + a[i + n] for i &lt; n; the result is a[0] (a is overwritten). Scalar Java, so the
     * order is fixed by the language in every JIT tier, unlike {@code reduceLanes(ADD)}, whose order
     * the JIT picks (the interpreter and C2 round differently). Part of {@link Contract}.
     */
    static float sumLanes(float[] a, int off) {
        if (L == 16) { // the same tree, written out in registers (the generic loop goes through memory)
            float t0 = a[off] + a[off + 8], t1 = a[off + 1] + a[off + 9], t2 = a[off + 2] + a[off + 10];
            float t3 = a[off + 3] + a[off + 11], t4 = a[off + 4] + a[off + 12], t5 = a[off + 5] + a[off + 13];
            float t6 = a[off + 6] + a[off + 14], t7 = a[off + 7] + a[off + 15];
            t0 = t0 + t4;
            t1 = t1 + t5;
            t2 = t2 + t6;
            t3 = t3 + t7;
            return (t0 + t2) + (t1 + t3);
        }
        for (int n = L / 2; n >= 1; n /= 2) {
            for (int i = 0; i < n; i++) {
                a[off + i] = a[off + i] + a[off + i + n];
            }
        }
        return a[off];
    }

    // The sumLanes tree in registers for L = 16: a fold adds the two halves of every group of lanes,
    // taking its groups from two vectors (lanes [a's groups | b's groups]); the pairs added are the
    // tree's pairs, so the sums are the same bits. Index vectors per group width (null unless L = 16).
    // Float index vectors on purpose: each selectFrom converts them to int (a few instructions), but
    // IntVector's two-vector selectFrom falls back to Java code on JDK 25 (tried: prefill 640 -> 374 tok/s).
    private static final FloatVector LO8 = foldIndex(8, 0), HI8 = foldIndex(8, 8), LO4 = foldIndex(4, 0);
    private static final FloatVector HI4 = foldIndex(4, 4), LO2 = foldIndex(2, 0), HI2 = foldIndex(2, 2);
    private static final FloatVector LO1 = foldIndex(1, 0), HI1 = foldIndex(1, 1);

    private static FloatVector foldIndex(int width, int shift) {
        if (L != 16) {
            return null;
        }
        float[] idx = new float[16];
        for (int j = 0; j < 16; j++) {
            idx[j] = (j / width) * 2 * width + j % width + shift; // a lane of the 32 lanes of (a, b)
        }
        return FloatVector.fromArray(F, idx, 0);
    }

    private static FloatVector fold(FloatVector a, FloatVector b, FloatVector lo, FloatVector hi) {
        return lo.selectFrom(a, b).add(hi.selectFrom(a, b));
    }

    /**
     * a[off + j] = {@link #sumLanes(float[], int)}(a, off + j * L) for j &lt; 4, bit for bit: the four
     * lane vectors at a[off ..] are reduced in registers when L = 16 (five folds instead of 60 scalar
     * loads and adds). Vectors never cross a call here: a vector argument to a method that is not
     * inlined is boxed, and slow.
     */
    static void sumLanes4(float[] a, int off) {
        if (L != 16) {
            float s0 = sumLanes(a, off), s1 = sumLanes(a, off + L), s2 = sumLanes(a, off + 2 * L), s3 = sumLanes(a, off + 3 * L);
            a[off] = s0;
            a[off + 1] = s1;
            a[off + 2] = s2;
            a[off + 3] = s3;
            return;
        }
        FloatVector v0 = FloatVector.fromArray(F, a, off), v1 = FloatVector.fromArray(F, a, off + L);
        FloatVector v2 = FloatVector.fromArray(F, a, off + 2 * L), v3 = FloatVector.fromArray(F, a, off + 3 * L);
        FloatVector q = fold(fold(v0, v1, LO8, HI8), fold(v2, v3, LO8, HI8), LO4, HI4); // [v0 x4 | v1 x4 | v2 x4 | v3 x4]
        FloatVector r = fold(q, q, LO2, HI2);
        fold(r, r, LO1, HI1).intoArray(a, off); // lanes 0..3 are the sums (4..15 repeat them)
    }

    /** As {@link #sumLanes4}, for sixteen lane vectors at a[off ..] (a GEMM kernel's 4x4 accumulators). */
    static void sumLanes16(float[] a, int off) {
        if (L != 16) {
            float[] s = new float[16];
            for (int j = 0; j < 16; j++) {
                s[j] = sumLanes(a, off + j * L);
            }
            System.arraycopy(s, 0, a, off, 16);
            return;
        }
        // Written out: a helper taking or returning vectors may be compiled on its own and then not
        // inlined (too large), and a vector crossing a call is boxed.
        FloatVector v0 = FloatVector.fromArray(F, a, off), v1 = FloatVector.fromArray(F, a, off + L);
        FloatVector v2 = FloatVector.fromArray(F, a, off + 2 * L), v3 = FloatVector.fromArray(F, a, off + 3 * L);
        FloatVector q0 = fold(fold(v0, v1, LO8, HI8), fold(v2, v3, LO8, HI8), LO4, HI4);
        v0 = FloatVector.fromArray(F, a, off + 4 * L);
        v1 = FloatVector.fromArray(F, a, off + 5 * L);
        v2 = FloatVector.fromArray(F, a, off + 6 * L);
        v3 = FloatVector.fromArray(F, a, off + 7 * L);
        FloatVector q1 = fold(fold(v0, v1, LO8, HI8), fold(v2, v3, LO8, HI8), LO4, HI4);
        v0 = FloatVector.fromArray(F, a, off + 8 * L);
        v1 = FloatVector.fromArray(F, a, off + 9 * L);
        v2 = FloatVector.fromArray(F, a, off + 10 * L);
        v3 = FloatVector.fromArray(F, a, off + 11 * L);
        FloatVector q2 = fold(fold(v0, v1, LO8, HI8), fold(v2, v3, LO8, HI8), LO4, HI4);
        v0 = FloatVector.fromArray(F, a, off + 12 * L);
        v1 = FloatVector.fromArray(F, a, off + 13 * L);
        v2 = FloatVector.fromArray(F, a, off + 14 * L);
        v3 = FloatVector.fromArray(F, a, off + 15 * L);
        FloatVector q3 = fold(fold(v0, v1, LO8, HI8), fold(v2, v3, LO8, HI8), LO4, HI4);
        fold(fold(q0, q1, LO2, HI2), fold(q2, q3, LO2, HI2), LO1, HI1).intoArray(a, off);
    }

    /** {@link #sumLanes(float[], int)} of the lanes of v. */
    static float sumLanes(FloatVector v) {
        float[] a = new float[L];
        v.intoArray(a, 0);
        return sumLanes(a, 0);
    }
}
