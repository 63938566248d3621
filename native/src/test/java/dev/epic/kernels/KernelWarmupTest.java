package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;

import java.lang.foreign.Arena;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

class KernelWarmupTest {
    /**
     * The warm-up's view is the matrix's own first rows: the same class (so the same kernels compile)
     * and the same products, bit for bit, as those rows of the whole matrix, in every format.
     */
    @Test
    void headIsTheFirstRowsInTheSameFormat() {
        try (Arena arena = Arena.ofConfined()) {
            for (InvarianceCases.Case c : InvarianceCases.build(arena)) {
                Matrix m = c.m();
                for (int rows : new int[] {1, 5, 16, m.rows(), m.rows() + 10}) {
                    Matrix h = KernelWarmup.head(m, rows);
                    int n = Math.min(rows, m.rows());
                    assertSame(m.getClass(), h.getClass(), c.name());
                    assertEquals(n, h.rows(), c.name());
                    assertEquals(m.cols(), h.cols(), c.name());
                    for (int batch : new int[] {1, 7}) {
                        float[] x = InvarianceCases.input(c, batch);
                        float[] all = new float[batch * m.rows()];
                        m.matmul(x, all, batch);
                        float[] head = new float[batch * n];
                        h.matmul(x, head, batch);
                        for (int b = 0; b < batch; b++) {
                            assertArrayEquals(Arrays.copyOfRange(all, b * m.rows(), b * m.rows() + n),
                                    Arrays.copyOfRange(head, b * n, (b + 1) * n), c.name() + " rows " + rows + " batch " + batch);
                        }
                    }
                }
            }
        }
    }

    @Test
    void runsTheRoundsAskedForAndNothingForAMatrixWithoutCpuKernels() {
        Matrix m = Matrices.f32(new float[300 * 40], 300, 40);
        assertEquals(3 * 4, KernelWarmup.matmuls(m, new int[] {1, 2, 5, 17}, 3));
        Matrix elsewhere = new Matrix() { // as a GPU matrix: no JIT-compiled kernels to warm
            public int rows() {
                return 8;
            }

            public int cols() {
                return 8;
            }

            public void matmul(float[] x, float[] out, int batch) {
                throw new AssertionError("not to be run");
            }

            public void row(int r, float[] dst, int off) {}

            public long storageBytes() {
                return 0;
            }
        };
        assertNull(KernelWarmup.head(elsewhere, 4));
        assertEquals(0, KernelWarmup.matmuls(elsewhere, new int[] {1}, 3));
    }
}
