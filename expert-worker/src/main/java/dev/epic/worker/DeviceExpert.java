package dev.epic.worker;

import dev.epic.kernels.cuda.CudaKernels;
import dev.epic.kernels.cuda.DeviceMatrix;
import dev.epic.kernels.cuda.DeviceMatrix.Scratch;

/**
 * One routed expert resident on a GPU: the SwiGLU block {@code down(silu(gate(x)) * up(x))}, as
 * {@link dev.epic.model.layers.Mlp} computes it on the CPU. A message's experts with few rows run
 * together ({@link DeviceMatrix#experts}); this runs one with many rows on its own, through cuBLAS.
 * Scratch slots: 2 for h, 3 and 4 for the gate and up products.
 */
final class DeviceExpert implements AutoCloseable {
    static final int H = 2;
    static final int G = 3;
    static final int U = 4;
    /** Scratch slots of the bf16-activation path: the message's rows in bf16, and h in bf16. */
    static final int X16 = 8;
    static final int H16 = 9;

    private final DeviceMatrix gate;
    private final DeviceMatrix up;
    private final DeviceMatrix down;
    private final CudaKernels kernels;

    DeviceExpert(DeviceMatrix gate, DeviceMatrix up, DeviceMatrix down, CudaKernels kernels) {
        this.gate = gate;
        this.up = up;
        this.down = down;
        this.kernels = kernels;
    }

    int inter() {
        return gate.rows();
    }

    boolean hasFormat(dev.epic.kernels.WeightLayout.Format f) {
        return gate.format() == f && up.format() == f && down.format() == f;
    }

    DeviceMatrix gate() {
        return gate;
    }

    DeviceMatrix down() {
        return down;
    }

    /** Its six entries of a message's expert table (see {@link DeviceMatrix#experts}). */
    void addresses(long[] table, int at) {
        DeviceMatrix.addresses(gate, up, down, table, at);
    }

    /**
     * Sizes the scratch of {@link #forward} / {@link #forwardBf16} for up to {@code rows} rows, before
     * any product of a message is queued (the same for every expert of a layer: one width).
     */
    void reserve(Scratch s, int rows, boolean bf16) {
        long bytes = (long) rows * inter() * Float.BYTES;
        s.buffer(H, bytes);
        s.buffer(G, bytes);
        s.buffer(U, bytes);
        if (bf16) {
            s.buffer(H16, bytes / 2);
        }
    }

    /**
     * y = expert(x) with bf16 activations on the tensor cores: {@code xh} holds the rows already in
     * bf16; gate and up accumulate in fp32, SwiGLU runs in fp32, h is rounded to bf16 for down.
     */
    void forwardBf16(long xh, long y, int rows, Scratch s) {
        long n = (long) rows * inter();
        long g = s.buffer(G, n * Float.BYTES);
        long u = s.buffer(U, n * Float.BYTES);
        long h = s.buffer(H, n * Float.BYTES);
        long hh = s.buffer(H16, n * 2);
        gate.gemmBf16(xh, g, rows, s);
        up.gemmBf16(xh, u, rows, s);
        kernels.swiglu(g, u, h, n);
        kernels.narrowActivations(h, hh, n);
        down.gemmBf16(hh, y, rows, s);
    }

    /**
     * y = expert(x) for {@code rows} rows of device floats through cuBLAS (an expert with more rows
     * than the batched row kernels take), queued on the default stream.
     */
    void forward(long x, long y, int rows, Scratch s) {
        long n = (long) rows * inter();
        long g = s.buffer(G, n * Float.BYTES);
        long u = s.buffer(U, n * Float.BYTES);
        long h = s.buffer(H, n * Float.BYTES);
        gate.gemm(x, g, rows, s);
        up.gemm(x, u, rows, s);
        kernels.swiglu(g, u, h, n);
        down.gemm(h, y, rows, s);
    }

    long storageBytes() {
        return gate.storageBytes() + up.storageBytes() + down.storageBytes();
    }

    @Override
    public void close() {
        gate.close();
        up.close();
        down.close();
    }
}
