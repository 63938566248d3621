package dev.epic.kernels;

/**
 * A dense row-major weight matrix W of shape [rows x cols], stored in any dtype (f32, bf16, f16,
 * fp8 with block scales, int8/int4 groups). The engine only ever multiplies by it, so storage and
 * kernels stay behind this interface; a CUDA backend implements it too.
 *
 * <p>Arithmetic contract: weights are widened to fp32 and products are accumulated in fp32.
 */
public interface Matrix {
    int rows();

    int cols();

    /** out[b*rows + r] = sum_c W[r,c] * x[b*cols + c], for b in [0, batch). */
    void matmul(float[] x, float[] out, int batch);

    /** Widens row r to fp32 into dst[off .. off+cols) (embedding lookup). */
    void row(int r, float[] dst, int off);

    /** Bytes of weight storage read by one full matmul pass (for bandwidth accounting). */
    long storageBytes();

    /** Its storage as raw bytes, or null for formats only the CPU kernels read (f16, q8, q4). */
    default WeightLayout layout() {
        return null;
    }
}
