package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Q8 / Q4: kernels against the dequantised weights, quantisation error bounds, file round trip. */
class QuantizedMatrixTest {
    private static final int[][] SHAPES = {{1, 1}, {5, 31}, {33, 100}, {64, 136}, {130, 1030}, {257, 1024},
            {9, 2100}};
    private static final int[] BATCHES = {1, 3, 17};

    @TempDir
    Path tmp;

    @Test
    void q8KernelsMatchDequantisedWeightsAndErrorIsBounded() {
        Random rnd = new Random(5);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : SHAPES) {
                Matrix src = Matrices.bf16(Reference.bf16Random(arena, rnd, s[0], s[1]), s[0], s[1]);
                Q8Matrix q = (Q8Matrix) Matrices.q8(src, arena);
                for (int b : BATCHES) {
                    Reference.checkMatmul("q8", q, q::weight, b, rnd);
                }
                Reference.checkRows("q8", q, q::weight);
                float[] orig = new float[s[1]];
                for (int r = 0; r < s[0]; r++) {
                    src.row(r, orig, 0);
                    for (int c = 0; c < s[1]; c++) {
                        float scale = q.scale(r, c / 32);
                        // Half a step, plus fp32 rounding of w * (1/scale) (|w/scale| <= 127, two roundings:
                        // 127 * 2^-23 steps) and of code * scale (half an ulp of the weight).
                        double err = Math.abs(orig[c] - q.weight(r, c));
                        assertTrue(err <= scale * (0.5 + 127 * 0x1p-23) + Math.ulp(orig[c]),
                                "q8 error " + err + " > scale/2 = " + scale / 2 + " at " + r + "," + c);
                    }
                }
            }
        }
    }

    @Test
    void q4KernelsMatchDequantisedWeightsAndErrorIsBounded() {
        Random rnd = new Random(6);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : SHAPES) {
                Matrix src = Matrices.bf16(Reference.bf16Random(arena, rnd, s[0], s[1]), s[0], s[1]);
                Q4Matrix q = (Q4Matrix) Matrices.q4(src, arena);
                for (int b : BATCHES) {
                    Reference.checkMatmul("q4", q, q::weight, b, rnd);
                }
                Reference.checkRows("q4", q, q::weight);
                float[] orig = new float[s[1]];
                for (int r = 0; r < s[0]; r++) {
                    src.row(r, orig, 0);
                    for (int c = 0; c < s[1]; c++) {
                        float d = Math.abs(q.scale(r, c / 32));
                        double rel = orig[c] / (double) q.scale(r, c / 32);
                        // Q4_0: the top code 15 (w/d >= 7.5) is clamped, so its error may reach |d|.
                        // plus fp32 rounding of w * (1/d) (|w/d| <= 8: 8 * 2^-23 steps) and of (code-8) * d.
                        double bound = d * ((rel >= 7.5 - 1e-5 ? 1.0 : 0.5) + 8 * 0x1p-23) + Math.ulp(orig[c]);
                        double err = Math.abs(orig[c] - q.weight(r, c));
                        assertTrue(err <= bound, "q4 error " + err + " > " + bound + " at " + r + "," + c);
                    }
                }
            }
        }
    }

    @Test
    void q8AndQ4ExactOnRepresentableWeights() {
        // Weights that are already multiples of the step quantise losslessly: guards against an
        // off-by-one in code packing that the error bound alone would not notice for tiny scales.
        float[] w = new float[2 * 64];
        for (int i = 0; i < w.length; i++) {
            w[i] = ((i * 7) % 15) - 7;
        }
        w[0] = -8; // Q4 scale = -8 / -8 = 1
        w[32] = -8;
        w[64] = -8;
        w[96] = -8;
        Matrix src = Matrices.f32(w, 2, 64);
        Matrix q4 = Matrices.q4(src);
        float[] row = new float[64];
        for (int r = 0; r < 2; r++) {
            q4.row(r, row, 0);
            for (int c = 0; c < 64; c++) {
                assertEquals(w[r * 64 + c], row[c], "q4 " + r + "," + c);
            }
        }
        float[] w8 = new float[64];
        for (int i = 0; i < 64; i++) {
            w8[i] = (i * 37 % 255) - 127;
        }
        w8[0] = 127;
        w8[32] = -127;
        Matrix q8 = Matrices.q8(Matrices.f32(w8, 1, 64));
        q8.row(0, row, 0);
        assertArrayEquals(w8, row);
    }

    @Test
    void saveAndLoadRoundTrip() throws IOException {
        Random rnd = new Random(7);
        try (Arena arena = Arena.ofShared()) {
            Matrix src = Matrices.bf16(Reference.bf16Random(arena, rnd, 45, 200), 45, 200);
            for (Matrix q : new Matrix[] {Matrices.q8(src, arena), Matrices.q4(src, arena)}) {
                Path file = tmp.resolve("m.epq");
                Matrices.saveQuantized(q, file);
                Matrix loaded = Matrices.loadQuantized(file, arena);
                assertEquals(q.getClass(), loaded.getClass());
                assertEquals(45, loaded.rows());
                assertEquals(200, loaded.cols());
                assertEquals(q.storageBytes(), loaded.storageBytes());
                float[] x = Reference.randomFloats(rnd, 3 * 200);
                float[] a = new float[3 * 45], b = new float[3 * 45];
                q.matmul(x, a, 3);
                loaded.matmul(x, b, 3);
                assertArrayEquals(a, b);
            }
        }
    }

    @Test
    void loadRejectsBadFilesWithTheirName() throws IOException {
        Path notQuant = tmp.resolve("junk.epq");
        Files.write(notQuant, new byte[100]);
        try (Arena arena = Arena.ofShared()) {
            IOException e = assertThrows(IOException.class, () -> Matrices.loadQuantized(notQuant, arena));
            assertTrue(e.getMessage().contains("junk.epq") && e.getMessage().contains("magic"), e.getMessage());

            Matrix q = Matrices.q8(Matrices.f32(new float[64 * 3], 3, 64), arena);
            Path good = tmp.resolve("good.epq");
            Matrices.saveQuantized(q, good);
            byte[] bytes = Files.readAllBytes(good);
            Path truncated = tmp.resolve("cut.epq");
            Files.write(truncated, java.util.Arrays.copyOf(bytes, bytes.length - 1));
            e = assertThrows(IOException.class, () -> Matrices.loadQuantized(truncated, arena));
            assertTrue(e.getMessage().contains("cut.epq") && e.getMessage().contains("truncated"), e.getMessage());

            Path tiny = tmp.resolve("tiny.epq");
            Files.write(tiny, new byte[3]);
            assertThrows(IOException.class, () -> Matrices.loadQuantized(tiny, arena));
        }
        assertThrows(IllegalArgumentException.class,
                () -> Matrices.saveQuantized(Matrices.f32(new float[4], 2, 2), tmp.resolve("f32.epq")));
    }

    @Test
    void quantiseRejectsNonFiniteWeights() {
        float[] w = new float[64];
        w[40] = Float.NaN;
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Matrices.q8(Matrices.f32(w, 1, 64)));
        assertTrue(e.getMessage().contains("row 0"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Matrices.q4(Matrices.f32(w, 1, 64)));
    }

    @Test
    void quantisedMatricesAreSmaller() {
        Matrix src = Matrices.bf16(MemorySegment.ofArray(new short[64 * 1024]), 64, 1024);
        assertEquals(64L * 1024 * 2, src.storageBytes());
        assertEquals(64L * 1024 + 64L * 32 * 4, Matrices.q8(src).storageBytes());
        assertEquals(64L * 512 + 64L * 32 * 4, Matrices.q4(src).storageBytes());
    }
}
