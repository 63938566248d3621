package dev.epic.kernels;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/**
 * Factories for {@link Matrix} views over raw little-endian weight bytes (normally a memory-mapped
 * checkpoint segment). No weight is copied onto the Java heap.
 *
 * <p>Batch-1 products run a fused GEMV (weights widened in registers) split across the
 * {@link Parallel} pool; larger batches run a tiled GEMM. Segments from a shared, global or auto
 * arena are read by all pool threads; a segment confined to one thread makes that matrix run on the
 * caller thread only.
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

    /**
     * Q8_0-style copy of any matrix in off-heap memory of {@code arena}: groups of 32 columns,
     * int8 codes, one fp32 scale per group (max|w|/127). |W - Q| <= scale/2 per weight.
     */
    public static Matrix q8(Matrix src, Arena arena) {
        return Q8Matrix.quantize(src, arena);
    }

    /** {@link Matrix#storageBytes} of a q8 copy of a [rows, cols] matrix, without making it. */
    public static long q8Bytes(int rows, int cols) {
        return GroupQuantMatrix.storageBytes(rows, cols, Q8Matrix.CODE_BYTES_PER_GROUP);
    }

    /** {@link Matrix#storageBytes} of a q4 copy of a [rows, cols] matrix, without making it. */
    public static long q4Bytes(int rows, int cols) {
        return GroupQuantMatrix.storageBytes(rows, cols, Q4Matrix.CODE_BYTES_PER_GROUP);
    }

    /** {@link #q8(Matrix, Arena)} in GC-managed off-heap memory. */
    public static Matrix q8(Matrix src) {
        return q8(src, Arena.ofAuto());
    }

    /**
     * Q4_0-style copy of any matrix in off-heap memory of {@code arena}: groups of 32 columns, 4-bit
     * codes, W = (code - 8) * d with d = (value of largest magnitude) / -8. |W - Q| <= |d|/2, or
     * <= |d| for the clamped top code.
     */
    public static Matrix q4(Matrix src, Arena arena) {
        return Q4Matrix.quantize(src, arena);
    }

    /** {@link #q4(Matrix, Arena)} in GC-managed off-heap memory. */
    public static Matrix q4(Matrix src) {
        return q4(src, Arena.ofAuto());
    }

    /** Saves a matrix made by {@link #q8} / {@link #q4} (or loaded) in the EPICQNT1 format. */
    public static void saveQuantized(Matrix quantized, Path path) throws IOException {
        QuantFile.save(quantized, path);
    }

    /** Maps an EPICQNT1 file (read-only, lives as long as {@code arena}). */
    public static Matrix loadQuantized(Path path, Arena arena) throws IOException {
        return QuantFile.load(path, arena);
    }
}
