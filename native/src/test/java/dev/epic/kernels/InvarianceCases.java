package dev.epic.kernels;

import static dev.epic.kernels.Reference.F32;
import static dev.epic.kernels.Reference.U16;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/**
 * Deterministic matrices (from fixed seeds) for the invariance tests, covering every storage format
 * and every GEMV route: fused loops, the decode fallback (fp8 blocks that are not whole vectors,
 * fp8 NaN codes, fp8 scales too large to fold, q8/q4 partial groups), shapes with rows not a
 * multiple of 4 or 16, columns not a multiple of L, more than one chunk, partial fp8 blocks.
 */
final class InvarianceCases {
    record Case(String name, Matrix m) {}

    private InvarianceCases() {}

    static List<Case> build(Arena arena) {
        List<Case> cases = new ArrayList<>();
        Random rnd = new Random(42);
        cases.add(new Case("f32 37x1100", f32(arena, rnd, 37, 1100)));
        cases.add(new Case("f32 6x77", f32(arena, rnd, 6, 77)));
        cases.add(new Case("bf16 37x1100", Matrices.bf16(Reference.bf16Random(arena, rnd, 37, 1100), 37, 1100)));
        cases.add(new Case("bf16 21x2080", Matrices.bf16(Reference.bf16Random(arena, rnd, 21, 2080), 21, 2080)));
        cases.add(new Case("f16 37x1100", f16(arena, rnd, 37, 1100)));
        cases.add(new Case("fp8 37x1100 b128", fp8(arena, rnd, 37, 1100, 128, 128, false, 1f)));
        cases.add(new Case("fp8 21x2080 b16x32", fp8(arena, rnd, 21, 2080, 16, 32, false, 1f)));
        cases.add(new Case("fp8 21x200 b8x48", fp8(arena, rnd, 21, 200, 8, 48, false, 1f)));
        cases.add(new Case("fp8 37x300 b8x64 nan", fp8(arena, rnd, 37, 300, 8, 64, true, 1f)));
        cases.add(new Case("fp8 13x300 b8x64 huge", fp8(arena, rnd, 13, 300, 8, 64, false, 1e5f)));
        Matrix src = f32(arena, rnd, 37, 1100);
        cases.add(new Case("q8 37x1100", Matrices.q8(src, arena)));
        cases.add(new Case("q4 37x1100", Matrices.q4(src, arena)));
        Matrix src2 = f32(arena, rnd, 21, 2080);
        cases.add(new Case("q8 21x2080", Matrices.q8(src2, arena)));
        cases.add(new Case("q4 21x2080", Matrices.q4(src2, arena)));
        return cases;
    }

    /** The input for a case and batch, from a seed derived from both. */
    static float[] input(Case c, int batch) {
        return Reference.randomFloats(new Random(c.name().hashCode() * 31L + batch), batch * c.m().cols());
    }

    private static Matrix f32(Arena arena, Random rnd, int rows, int cols) {
        MemorySegment seg = arena.allocate(4L * rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            seg.set(F32, 4 * i, (float) rnd.nextGaussian());
        }
        return Matrices.f32(seg, rows, cols);
    }

    private static Matrix f16(Arena arena, Random rnd, int rows, int cols) {
        MemorySegment seg = arena.allocate(2L * rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            double v = rnd.nextGaussian() * (rnd.nextInt(8) == 0 ? 1e-6 : 1);
            seg.set(U16, 2 * i, Float.floatToFloat16((float) v));
        }
        return Matrices.f16(seg, rows, cols);
    }

    /** Random e4m3 codes (NaN codes only if nan, in one row) and scales around scaleMag. */
    private static Matrix fp8(Arena arena, Random rnd, int rows, int cols, int br, int bc, boolean nan,
            float scaleMag) {
        MemorySegment data = arena.allocate((long) rows * cols);
        for (long i = 0; i < (long) rows * cols; i++) {
            int code;
            do {
                code = rnd.nextInt(256);
            } while ((code & 0x7f) == 0x7f);
            data.set(ValueLayout.JAVA_BYTE, i, (byte) code);
        }
        if (nan) {
            data.set(ValueLayout.JAVA_BYTE, (long) (rows / 2) * cols + 3, (byte) 0x7f);
        }
        int sr = Math.ceilDiv(rows, br), sc = Math.ceilDiv(cols, bc);
        MemorySegment scales = arena.allocate(4L * sr * sc);
        for (long i = 0; i < (long) sr * sc; i++) {
            scales.set(F32, 4 * i, scaleMag * (float) (0.001 + rnd.nextDouble() * 0.01));
        }
        return Matrices.fp8Block(data, scales, rows, cols, br, bc);
    }
}
