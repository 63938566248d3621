package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;

import jdk.incubator.vector.FloatVector;

/**
 * The one accumulation order every matmul path follows (GEMV, the tiled GEMM and its tail kernels,
 * every storage format), so that out[b, r] depends only on W's row r and x's row b: never on the
 * batch size, the other rows in the call, the thread split, the code path, or the JIT tier.
 * Continuous batching relies on this to give a request the same tokens alone or batched.
 *
 * <p>With w[c] = W[r, c] widened to fp32 exactly as {@link Matrix#row} returns it (fp8: e4m3 * scale
 * rounded once; q8/q4: code * scale rounded once) and L = {@link Simd#L}:
 * <ol>
 *   <li>the columns are cut into chunks [k0, k1) of {@link #CHUNK} columns (the last one shorter);
 *   <li>in a chunk, an fp32 vector accumulator of L lanes starts at zero and, for c = k0, k0 + L, ...
 *       while c + L &lt;= k1, takes acc = fma(w[c..c+L), x[c..c+L), acc): lane i sums the columns
 *       c = k0 + i (mod L) in ascending order, each step one fused multiply-add;
 *   <li>the chunk sum p is {@link Simd#sumLanes}(acc) (a fixed pairwise tree), then the remaining
 *       columns c are added in ascending order as p = p + (w[c] * x[c]) (product rounded, then sum);
 *   <li>out = p(chunk 0), then out = out + p(chunk t) for t = 1, 2, ... in order.
 * </ol>
 * The test-side scalar reference (ContractReference) writes the same steps out with Math.fma.
 */
final class Contract {
    /** Columns per chunk; equals the GEMM tile width, so a tile is a chunk. A multiple of L. */
    static final int CHUNK = 1024;

    private Contract() {}

    /** Steps 2 and 3 for one chunk whose weights are already widened: w[w0 .. w0+n) . x[x0 .. x0+n). */
    static float dot(float[] w, int w0, float[] x, int x0, int n) {
        FloatVector c = FloatVector.zero(F);
        int body = n - n % L;
        int k = 0;
        for (; k < body; k += L) {
            c = FloatVector.fromArray(F, w, w0 + k).fma(FloatVector.fromArray(F, x, x0 + k), c);
        }
        float s = Simd.sumLanes(c);
        for (; k < n; k++) {
            s += w[w0 + k] * x[x0 + k];
        }
        return s;
    }
}
