package dev.epic.model.layers;

import dev.epic.kernels.KernelWarmup;
import dev.epic.kernels.Matrix;
import dev.epic.kernels.VectorOps;
import dev.epic.model.WeightSource;

/**
 * SwiGLU feed-forward block: {@code down(silu(gate(x)) * up(x))}. The dense MLP of the first layers,
 * every routed expert and the shared expert are all this block, at different widths.
 */
public final class Mlp {
    private final Matrix gate;
    private final Matrix up;
    private final Matrix down;

    public Mlp(Matrix gate, Matrix up, Matrix down) {
        this.gate = gate;
        this.up = up;
        this.down = down;
    }

    /** Loads {@code prefix.gate_proj/up_proj/down_proj.weight} for a block of width {@code inter}. */
    public static Mlp load(WeightSource w, String prefix, int hidden, int inter) {
        return new Mlp(w.matrix(prefix + ".gate_proj.weight", inter, hidden),
                w.matrix(prefix + ".up_proj.weight", inter, hidden),
                w.matrix(prefix + ".down_proj.weight", hidden, inter));
    }

    public int hidden() {
        return gate.cols();
    }

    /** out[rows x hidden] = MLP(x[rows x hidden]). */
    public void forward(float[] x, float[] out, int rows) {
        int inter = gate.rows();
        float[] g = new float[rows * inter];
        float[] u = new float[rows * inter];
        gate.matmul(x, g, rows);
        up.matmul(x, u, rows);
        VectorOps.swiglu(g, u, g); // g <- silu(g) * u
        down.matmul(g, out, rows);
    }

    /**
     * Has the JIT compile this block's kernels ({@link KernelWarmup}): {@code rounds} products of each
     * batch size on each matrix's first rows, and the SwiGLU between them. Returns the products run.
     */
    public int warmUp(int[] batches, int rounds) {
        int products = 0;
        for (Matrix m : new Matrix[] {gate, up, down}) {
            products += KernelWarmup.matmuls(m, batches, rounds);
        }
        if (products > 0) {
            float[] g = new float[gate.rows()];
            float[] u = new float[gate.rows()];
            for (int round = 0; round < rounds * batches.length; round++) {
                VectorOps.swiglu(g, u, g);
            }
        }
        return products;
    }

    public long storageBytes() {
        return gate.storageBytes() + up.storageBytes() + down.storageBytes();
    }

    /** Multiply-adds of one row through the block (a parallel-work estimate). */
    public long multiplyAdds() {
        return (long) gate.rows() * gate.cols() * 3;
    }
}
