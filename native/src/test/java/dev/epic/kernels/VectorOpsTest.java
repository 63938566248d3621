package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The fused fp32 helpers against double-precision formulas. */
class VectorOpsTest {
    private static final int[] SIZES = {1, 15, 17, 100, 1030};

    @Test
    void dotAndAxpy() {
        Random rnd = new Random(8);
        for (int n : SIZES) {
            float[] a = Reference.randomFloats(rnd, n + 5), b = Reference.randomFloats(rnd, n + 2);
            double want = 0, abs = 0;
            for (int i = 0; i < n; i++) {
                want += (double) a[5 + i] * b[2 + i];
                abs += Math.abs((double) a[5 + i] * b[2 + i]);
            }
            assertEquals(want, VectorOps.dot(a, 5, b, 2, n), Reference.REL * abs, "dot n=" + n);
            float[] y = b.clone();
            VectorOps.axpy(0.75f, a, 5, y, 2, n);
            for (int i = 0; i < n; i++) {
                assertEquals(b[2 + i] + 0.75 * a[5 + i], y[2 + i], 1e-6 * (Math.abs(b[2 + i]) + Math.abs(a[5 + i])));
            }
            assertEquals(b[0], y[0]);
        }
    }

    /** The row-blocked form gives exactly the bits of one axpy per row (attention relies on it). */
    @Test
    void axpysEqualsPerRowCalls() {
        Random rnd = new Random(10);
        for (int n : SIZES) {
            for (int rows : new int[] {1, 3, 4, 7, 9}) {
                int stride = n + 3;
                float[] a = Reference.randomFloats(rnd, 2 + rows * stride);
                float[] coef = Reference.randomFloats(rnd, rows + 2);
                float[] want = Reference.randomFloats(rnd, n + 4), y = want.clone();
                for (int r = 0; r < rows; r++) {
                    VectorOps.axpy(coef[2 + r], a, 2 + r * stride, want, 4, n);
                }
                VectorOps.axpys(coef, 2, rows, a, 2, stride, y, 4, n);
                for (int i = 0; i < y.length; i++) {
                    assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(y[i]), "axpys n=" + n + " at " + i);
                }
            }
        }
    }

    /** Two outputs sharing the rows of a: each the bits of its own axpys (so of per-row axpy calls). */
    @Test
    void axpys2EqualsTwoAxpysCalls() {
        Random rnd = new Random(11);
        for (int n : SIZES) {
            for (int rows : new int[] {1, 4, 9}) {
                int stride = n + 3;
                float[] a = Reference.randomFloats(rnd, 2 + rows * stride);
                float[] coef = Reference.randomFloats(rnd, 2 * rows + 5);
                float[] want = Reference.randomFloats(rnd, 2 * n + 9), y = want.clone();
                int cB = 3 + rows, yB = 5 + n;
                VectorOps.axpys(coef, 1, rows, a, 2, stride, want, 4, n);
                VectorOps.axpys(coef, cB, rows, a, 2, stride, want, yB, n);
                VectorOps.axpys2(coef, 1, cB, rows, a, 2, stride, y, 4, yB, n);
                for (int i = 0; i < y.length; i++) {
                    assertEquals(Float.floatToIntBits(want[i]), Float.floatToIntBits(y[i]), "axpys2 n=" + n + " at " + i);
                }
                // One output named twice is updated once.
                float[] once = want.clone(), twice = want.clone();
                VectorOps.axpys(coef, 1, rows, a, 2, stride, once, 4, n);
                VectorOps.axpys2(coef, 1, 1, rows, a, 2, stride, twice, 4, 4, n);
                for (int i = 0; i < once.length; i++) {
                    assertEquals(Float.floatToIntBits(once[i]), Float.floatToIntBits(twice[i]), "axpys2 once n=" + n);
                }
            }
        }
    }

    /** Four rows by two inputs per pass, yet each output is the bits of its own dot call. */
    @Test
    void dots2EqualsDotPerRow() {
        Random rnd = new Random(12);
        for (int n : new int[] {1, 15, 16, 17, 32, 48, 100, 256, 1030}) {
            for (int rows : new int[] {1, 3, 4, 6, 9}) {
                float[] w = Reference.randomFloats(rnd, 3 + rows * n);
                float[] x = Reference.randomFloats(rnd, 2 * n + 7);
                int xA = 2, xB = 4 + n;
                float[] out = new float[2 * rows + 6];
                VectorOps.dots2(w, 3, rows, n, x, xA, xB, out, 1, 3 + rows);
                for (int i = 0; i < rows; i++) {
                    float a = VectorOps.dot(w, 3 + i * n, x, xA, n), b = VectorOps.dot(w, 3 + i * n, x, xB, n);
                    assertEquals(Float.floatToIntBits(a), Float.floatToIntBits(out[1 + i]), "dots2 n=" + n + " row " + i);
                    assertEquals(Float.floatToIntBits(b), Float.floatToIntBits(out[3 + rows + i]), "dots2 n=" + n + " row " + i);
                }
                assertEquals(0f, out[0]);
                assertEquals(0f, out[1 + rows]);
                // The same input twice: both outputs equal the single dot.
                VectorOps.dots2(w, 3, rows, n, x, xA, xA, out, 1, 3 + rows);
                for (int i = 0; i < rows; i++) {
                    assertEquals(out[1 + i], out[3 + rows + i]);
                }
            }
        }
    }

    @Test
    void rmsnorm() {
        Random rnd = new Random(9);
        for (int n : SIZES) {
            float[] x = Reference.randomFloats(rnd, n + 3), w = Reference.randomFloats(rnd, n);
            float[] out = new float[n + 1];
            VectorOps.rmsnorm(x, 3, w, 1e-6f, out, 1);
            double ms = 0;
            for (int i = 0; i < n; i++) {
                ms += (double) x[3 + i] * x[3 + i];
            }
            double inv = 1 / Math.sqrt(ms / n + 1e-6);
            for (int i = 0; i < n; i++) {
                double want = x[3 + i] * inv * w[i];
                assertEquals(want, out[1 + i], 1e-5 * Math.abs(want) + 1e-7, "rmsnorm n=" + n + " i=" + i);
            }
        }
    }

    @Test
    void swiglu() {
        Random rnd = new Random(10);
        for (int n : SIZES) {
            float[] g = Reference.randomFloats(rnd, n), u = Reference.randomFloats(rnd, n);
            g[0] = -100f; // exp overflow side must give -0, not NaN
            float[] out = new float[n];
            VectorOps.swiglu(g, u, out);
            for (int i = 0; i < n; i++) {
                double want = g[i] / (1 + Math.exp(-g[i])) * u[i];
                assertEquals(want, out[i], 1e-6 * Math.abs(want) + 1e-30, "swiglu n=" + n + " i=" + i);
            }
        }
    }

    @Test
    void softmax() {
        Random rnd = new Random(11);
        for (int n : SIZES) {
            float[] x = Reference.randomFloats(rnd, n + 2);
            for (int i = 0; i < x.length; i++) {
                x[i] *= 30; // wide range: the max subtraction matters
            }
            float[] y = x.clone();
            VectorOps.softmax(y, 2, n);
            double max = Double.NEGATIVE_INFINITY, sum = 0;
            for (int i = 0; i < n; i++) {
                max = Math.max(max, x[2 + i]);
            }
            for (int i = 0; i < n; i++) {
                sum += Math.exp(x[2 + i] - max);
            }
            for (int i = 0; i < n; i++) {
                double want = Math.exp(x[2 + i] - max) / sum;
                assertEquals(want, y[2 + i], 1e-5 * want + 1e-30, "softmax n=" + n + " i=" + i);
            }
            assertEquals(x[0], y[0]);
        }
    }
}
