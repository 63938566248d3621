package dev.epic.kernels;

import java.lang.foreign.MemorySegment;

/**
 * Factories for {@link Matrix} views over raw little-endian weight bytes (normally a memory-mapped
 * checkpoint segment). No weight is copied onto the Java heap.
 */
public final class Matrices {
    private Matrices() {}

    public static Matrix f32(MemorySegment data, int rows, int cols) {
        return new F32Matrix(data, rows, cols);
    }

    public static Matrix bf16(MemorySegment data, int rows, int cols) {
        return new Bf16Matrix(data, rows, cols);
    }

    public static Matrix f16(MemorySegment data, int rows, int cols) {
        return new F16Matrix(data, rows, cols);
    }

    /**
     * float8_e4m3fn weights with float32 block scales ({@code weight_scale_inv}, shape
     * [ceil(rows/blockRows), ceil(cols/blockCols)]): W[r,c] = e4m3(code) * scale[r/bR][c/bC].
     */
    public static Matrix fp8Block(MemorySegment data, MemorySegment scales, int rows, int cols, int blockRows,
            int blockCols) {
        return new Fp8BlockMatrix(data, scales, rows, cols, blockRows, blockCols);
    }

    /** A heap-backed fp32 matrix (small synthetic or test weights). */
    public static Matrix f32(float[] data, int rows, int cols) {
        return new F32Matrix(MemorySegment.ofArray(data), rows, cols);
    }
}
