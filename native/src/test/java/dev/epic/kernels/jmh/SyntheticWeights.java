package dev.epic.kernels.jmh;

import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/** Off-heap synthetic weights in each benchmarked format (xorshift fill: fast enough for lm_head). */
final class SyntheticWeights {
    private SyntheticWeights() {}

    static Matrix make(String format, int rows, int cols, Arena arena) {
        return switch (format) {
            case "bf16" -> Matrices.bf16(bf16(rows, cols, arena), rows, cols);
            case "fp8" -> {
                MemorySegment codes = randomBytes((long) rows * cols, arena, 0xF7F7F7F7F7F7F7F7L); // no NaN codes
                int sr = Math.ceilDiv(rows, 128), sc = Math.ceilDiv(cols, 128);
                MemorySegment scales = arena.allocate(4L * sr * sc, 64);
                for (long i = 0; i < (long) sr * sc; i++) {
                    scales.setAtIndex(ValueLayout.JAVA_FLOAT, i, 1e-3f * (1 + i % 7));
                }
                yield Matrices.fp8Block(codes, scales, rows, cols, 128, 128);
            }
            case "q8", "q4" -> {
                try (Arena tmp = Arena.ofConfined()) {
                    Matrix src = Matrices.bf16(bf16(rows, cols, tmp), rows, cols);
                    yield format.equals("q8") ? Matrices.q8(src, arena) : Matrices.q4(src, arena);
                }
            }
            case "f32" -> {
                MemorySegment s = arena.allocate(4L * rows * cols, 64);
                MemorySegment b = bf16(rows, cols, arena);
                for (long i = 0; i < (long) rows * cols; i++) {
                    s.setAtIndex(ValueLayout.JAVA_INT, i, b.getAtIndex(ValueLayout.JAVA_SHORT, i) << 16);
                }
                yield Matrices.f32(s, rows, cols);
            }
            default -> throw new IllegalArgumentException("unknown format " + format);
        };
    }

    /** bf16 values of magnitude 2^-7 .. 2^0 with random sign and mantissa. */
    private static MemorySegment bf16(int rows, int cols, Arena arena) {
        MemorySegment s = randomBytes(2L * rows * cols, arena, 0x83FF83FF83FF83FFL);
        long n = s.byteSize() / 8;
        for (long i = 0; i < n; i++) {
            s.setAtIndex(ValueLayout.JAVA_LONG, i, s.getAtIndex(ValueLayout.JAVA_LONG, i) | 0x3C003C003C003C00L);
        }
        return s;
    }

    private static MemorySegment randomBytes(long bytes, Arena arena, long mask) {
        MemorySegment s = arena.allocate(Math.ceilDiv(bytes, 8) * 8, 64);
        long x = 0x9E3779B97F4A7C15L;
        for (long i = 0; i < s.byteSize() / 8; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            s.setAtIndex(ValueLayout.JAVA_LONG, i, x & mask);
        }
        return s;
    }
}
