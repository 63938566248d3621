package dev.epic.worker;

import dev.epic.kernels.cuda.CudaKernels;
import dev.epic.kernels.cuda.DeviceMatrix;
import dev.epic.kernels.cuda.DeviceMatrix.Scratch;

/**
 * One routed expert resident on a GPU: the SwiGLU block {@code down(silu(gate(x)) * up(x))}, as
 * {@link dev.epic.model.layers.Mlp} computes it on the CPU. A message's experts with few rows run
 * together ({@link DeviceMatrix#experts}); this runs one on its own: cuBLAS for many rows. Scratch
 * slots: 2 for h, 3 and 4 for the gate and up products of large batches.
 */
final class DeviceExpert implements AutoCloseable {
    static final int H = 2;
    static final int G = 3;
    static final int U = 4;

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

    /** Sizes the scratch for up to {@code rows} rows, before any product of a message is queued. */
    void reserve(Scratch s, int rows) {
        long bytes = (long) rows * inter() * Float.BYTES;
        s.buffer(H, bytes);
        if (rows > DeviceMatrix.MATVEC_MAX_BATCH) {
            s.buffer(G, bytes);
            s.buffer(U, bytes);
        }
    }

    /** y = expert(x) for {@code rows} rows of device floats, queued on the default stream. */
    void forward(long x, long y, int rows, Scratch s) {
        long bytes = (long) rows * inter() * Float.BYTES;
        long h = s.buffer(H, bytes);
        if (rows <= DeviceMatrix.MATVEC_MAX_BATCH) {
            DeviceMatrix.gateUp(gate, up, x, h, rows); // h = silu(gate x) * (up x), one pass
        } else {
            long g = s.buffer(G, bytes);
            long u = s.buffer(U, bytes);
            gate.matmul(x, g, rows, s);
            up.matmul(x, u, rows, s);
            kernels.swiglu(g, u, h, (long) rows * inter());
        }
        down.matmul(h, y, rows, s);
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
