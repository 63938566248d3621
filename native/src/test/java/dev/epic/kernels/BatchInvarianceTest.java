package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Bitwise batch and tier invariance (see {@link Contract}): every row of a batched product equals the
 * batch-1 product of that row and the scalar {@link ContractReference}, whatever the batch, the row
 * split or the JIT tier. Continuous batching promises a request the same tokens alone or batched.
 */
class BatchInvarianceTest {
    // 2, 3: q4's three-input pass (two inputs run as three), the two- and four-input passes of bf16,
    // q8 and fp8 (three run as four); 4|5, 6|7 and 8|9: either side of the fused small-batch path
    // (f32 and f16, q4, then bf16, q8 and fp8); 5: four inputs then one; 17, 64: the tiled GEMM.
    private static final int[] BATCHES = {1, 2, 3, 4, 5, 6, 7, 8, 9, 17, 64};

    @Test
    void everyBatchRowEqualsItsBatchOneResultAndTheContract() {
        try (Arena arena = Arena.ofShared()) {
            for (InvarianceCases.Case c : InvarianceCases.build(arena)) {
                Matrix m = c.m();
                int rows = m.rows(), cols = m.cols();
                for (int batch : BATCHES) {
                    float[] x = InvarianceCases.input(c, batch);
                    float[] out = new float[batch * rows];
                    m.matmul(x, out, batch);
                    assertBits(c.name() + " batch " + batch + " vs contract", ContractReference.matmul(m, x, batch), out,
                            0, batch * rows);
                    for (int b = 0; b < batch; b++) {
                        float[] xb = new float[cols];
                        System.arraycopy(x, b * cols, xb, 0, cols);
                        float[] single = new float[rows];
                        m.matmul(xb, single, 1);
                        float[] batched = new float[rows];
                        System.arraycopy(out, b * rows, batched, 0, rows);
                        assertBits(c.name() + " batch " + batch + " row " + b + " vs batch 1", single, batched, 0, rows);
                    }
                }
            }
        }
    }

    @Test
    void gemvResultDoesNotDependOnTheRowSplit() {
        try (Arena arena = Arena.ofShared()) {
            for (InvarianceCases.Case c : InvarianceCases.build(arena)) {
                DenseMatrix m = (DenseMatrix) c.m();
                int rows = m.rows();
                float[] x = InvarianceCases.input(c, 1);
                float[] whole = new float[rows];
                m.gemv(x, 0, whole, 0, 0, rows);
                int[][] splits = {{0, 1}, {1, 6}, {6, rows / 2}, {rows / 2, rows - 1}, {rows - 1, rows}};
                float[] parts = new float[rows];
                for (int[] s : splits) {
                    m.gemv(x, 0, parts, 0, s[0], s[1]);
                }
                assertBits(c.name() + " split gemv", whole, parts, 0, rows);
                // Offsets into larger arrays (as the model's slices use them).
                float[] xo = new float[x.length + 5];
                System.arraycopy(x, 0, xo, 5, x.length);
                float[] oo = new float[rows + 3];
                m.gemv(xo, 5, oo, 3, 0, rows);
                assertBits(c.name() + " offset gemv", whole, java.util.Arrays.copyOfRange(oo, 3, rows + 3), 0, rows);
            }
        }
    }

    /**
     * Interpreted first calls (default flags and -Xint, in fresh JVMs) and C1-only code give the same
     * bits as this JVM's C2 code after warm-up. FloatVector.reduceLanes(ADD) fails this: its order is
     * the JIT's choice.
     */
    @Test
    void resultsAreTheSameInEveryJitTier() throws Exception {
        List<String> cold = probe(0);
        List<String> interpreted = probe(0, "-Xint");
        List<String> c1 = probe(20, "-XX:TieredStopAtLevel=1");
        List<String> warm;
        try (Arena arena = Arena.ofShared()) {
            warm = TierProbe.lines(InvarianceCases.build(arena), 750);
        }
        assertLines("first call in a fresh JVM", warm, cold);
        assertLines("-Xint", warm, interpreted);
        assertLines("C1 only", warm, c1);
    }

    private static List<String> probe(int rounds, String... flags) throws IOException, InterruptedException {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.add("--add-modules=jdk.incubator.vector");
        cmd.add("--enable-native-access=ALL-UNNAMED");
        cmd.addAll(List.of(flags));
        cmd.add("-cp");
        cmd.add(System.getProperty("java.class.path"));
        cmd.add(TierProbe.class.getName());
        cmd.add(Integer.toString(rounds));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("TierProbe " + List.of(flags) + " did not finish");
        }
        assertEquals(0, p.exitValue(), () -> "TierProbe " + List.of(flags) + " failed: " + out);
        return out.lines().filter(l -> l.contains(" batch ")).toList();
    }

    private static void assertLines(String what, List<String> expected, List<String> actual) {
        assertEquals(expected.size(), actual.size(), what + ": line count");
        for (int i = 0; i < expected.size(); i++) {
            assertEquals(expected.get(i), actual.get(i), what + " differs from warmed-up C2");
        }
    }

    private static void assertBits(String what, float[] expected, float[] actual, int from, int to) {
        for (int i = from; i < to; i++) {
            if (Float.floatToIntBits(expected[i]) != Float.floatToIntBits(actual[i])) {
                fail(what + ": element " + i + " expected " + expected[i] + " (" + Integer.toHexString(
                        Float.floatToIntBits(expected[i])) + ") but was " + actual[i] + " ("
                        + Integer.toHexString(Float.floatToIntBits(actual[i])) + ")");
            }
        }
    }
}
