package dev.epic.kernels;

import static dev.epic.kernels.Reference.F32;
import static dev.epic.kernels.Reference.U16;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** The f32 / bf16 / f16 / fp8-block kernels against a double-precision reference on awkward shapes. */
class DenseMatrixTest {
    /** rows not a multiple of the thread split or 4, cols not a multiple of 16, partial fp8 blocks, K tiling. */
    private static final int[][] SHAPES = {{1, 1}, {7, 13}, {33, 100}, {64, 136}, {37, 160}, {130, 1030},
            {257, 1024}, {19, 2100}};
    private static final int[] BATCHES = {1, 3, 17};

    @Test
    void f32MatchesReference() {
        Random rnd = new Random(1);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : SHAPES) {
                int rows = s[0], cols = s[1];
                MemorySegment seg = arena.allocate(4L * rows * cols);
                for (long i = 0; i < (long) rows * cols; i++) {
                    seg.set(F32, 4 * i, (float) rnd.nextGaussian());
                }
                Matrix m = Matrices.f32(seg, rows, cols);
                Reference.Weights w = (r, c) -> seg.get(F32, 4L * ((long) r * cols + c));
                for (int b : BATCHES) {
                    Reference.checkMatmul("f32", m, w, b, rnd);
                }
                Reference.checkRows("f32", m, w);
            }
        }
    }

    @Test
    void bf16MatchesReference() {
        Random rnd = new Random(2);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : SHAPES) {
                int rows = s[0], cols = s[1];
                MemorySegment seg = Reference.bf16Random(arena, rnd, rows, cols);
                Matrix m = Matrices.bf16(seg, rows, cols);
                Reference.Weights w = (r, c) -> Float.intBitsToFloat(
                        (seg.get(U16, 2L * ((long) r * cols + c)) & 0xffff) << 16);
                for (int b : BATCHES) {
                    Reference.checkMatmul("bf16", m, w, b, rnd);
                }
                Reference.checkRows("bf16", m, w);
            }
        }
    }

    @Test
    void f16MatchesReference() {
        Random rnd = new Random(3);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : SHAPES) {
                int rows = s[0], cols = s[1];
                MemorySegment seg = arena.allocate(2L * rows * cols);
                for (long i = 0; i < (long) rows * cols; i++) {
                    // Mix of normals, subnormals (tiny) and large values.
                    double v = rnd.nextGaussian() * (rnd.nextInt(8) == 0 ? 1e-6 : rnd.nextInt(8) == 0 ? 1000 : 1);
                    seg.set(U16, 2 * i, Float.floatToFloat16((float) v));
                }
                Matrix m = Matrices.f16(seg, rows, cols);
                Reference.Weights w = (r, c) -> Float.float16ToFloat(seg.get(U16, 2L * ((long) r * cols + c)));
                for (int b : BATCHES) {
                    Reference.checkMatmul("f16", m, w, b, rnd);
                }
                Reference.checkRows("f16", m, w);
            }
        }
    }

    @Test
    void f16WidensEveryCodeExactly() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(2L * 65536);
            for (int i = 0; i < 65536; i++) {
                seg.set(U16, 2L * i, (short) i);
            }
            float[] row = new float[65536];
            Matrices.f16(seg, 1, 65536).row(0, row, 0);
            for (int i = 0; i < 65536; i++) {
                float want = Float.float16ToFloat((short) i);
                assertTrue(Float.isNaN(want) ? Float.isNaN(row[i]) : Float.floatToRawIntBits(want) == Float
                        .floatToRawIntBits(row[i]), "f16 code " + Integer.toHexString(i));
            }
        }
    }

    @Test
    void bf16WidensEveryCodeExactly() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment seg = arena.allocate(2L * 65536);
            for (int i = 0; i < 65536; i++) {
                seg.set(U16, 2L * i, (short) i);
            }
            float[] row = new float[65536];
            Matrices.bf16(seg, 1, 65536).row(0, row, 0);
            for (int i = 0; i < 65536; i++) {
                assertEquals(i << 16, Float.floatToRawIntBits(row[i]), "bf16 code " + Integer.toHexString(i));
            }
        }
    }

    @Test
    void fp8BlockMatchesReference() {
        Random rnd = new Random(4);
        try (Arena arena = Arena.ofShared()) {
            for (int[] s : SHAPES) {
                int rows = s[0], cols = s[1];
                for (int[] block : new int[][] {{128, 128}, {16, 48}}) {
                    int br = block[0], bc = block[1];
                    MemorySegment codes = arena.allocate((long) rows * cols);
                    for (long i = 0; i < (long) rows * cols; i++) {
                        int code;
                        do {
                            code = rnd.nextInt(256);
                        } while ((code & 0x7f) == 0x7f); // NaN codes are checked separately
                        codes.set(ValueLayout.JAVA_BYTE, i, (byte) code);
                    }
                    int sr = Math.ceilDiv(rows, br), sc = Math.ceilDiv(cols, bc);
                    MemorySegment scales = arena.allocate(4L * sr * sc);
                    for (int i = 0; i < sr * sc; i++) {
                        scales.set(F32, 4L * i, (float) Math.exp(rnd.nextGaussian() * 3 - 6));
                    }
                    Matrix m = Matrices.fp8Block(codes, scales, rows, cols, br, bc);
                    Reference.Weights w = (r, c) -> Fp8E4M3.decode(codes.get(ValueLayout.JAVA_BYTE, (long) r * cols + c))
                            * scales.get(F32, 4L * ((r / br) * sc + c / bc));
                    for (int b : BATCHES) {
                        Reference.checkMatmul("fp8 block " + br + "x" + bc, m, w, b, rnd);
                    }
                    Reference.checkRows("fp8", m, w);
                }
            }
        }
    }

    @Test
    void fp8WidensEveryCodeExactlyIncludingNaNAndHugeScales() {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment codes = arena.allocate(256 * 4);
            for (int i = 0; i < 256 * 4; i++) {
                codes.set(ValueLayout.JAVA_BYTE, i, (byte) i);
            }
            // Scales: ordinary, one that makes subnormal fp32 weights, and one too big for the fast path.
            float[] sc = {0.0123f, 1e-40f, 3.0e30f, 1f};
            MemorySegment scales = arena.allocate(4L * sc.length);
            for (int i = 0; i < sc.length; i++) {
                scales.set(F32, 4L * i, sc[i]);
            }
            Matrix m = Matrices.fp8Block(codes, scales, 1, 256 * 4, 1, 256);
            float[] row = new float[256 * 4];
            m.row(0, row, 0);
            for (int i = 0; i < row.length; i++) {
                float want = Fp8E4M3.decode(i & 0xff) * sc[i / 256];
                assertTrue(Float.isNaN(want) ? Float.isNaN(row[i]) : want == row[i],
                        "fp8 code " + (i & 0xff) + " scale " + sc[i / 256] + ": want " + want + " got " + row[i]);
            }
            float[] x = new float[256 * 4];
            x[5] = 1f;
            float[] out = new float[1];
            m.matmul(x, out, 1);
            assertTrue(Float.isNaN(out[0]), "a NaN code must poison the dot product");
        }
    }

    @Test
    void fp8RowsWithNaNCodesOrHugeScalesTakeTheExactPathPerBlock() {
        // 40 rows in row blocks of 8: block 1 has one NaN code, block 3 a scale so large that the
        // folded x * scale * 2^120 overflows; the other blocks use the fast scaled-x path.
        Random rnd = new Random(12);
        int rows = 40, cols = 70, br = 8, bc = 32;
        try (Arena arena = Arena.ofShared()) {
            MemorySegment codes = arena.allocate((long) rows * cols);
            for (long i = 0; i < (long) rows * cols; i++) {
                codes.set(ValueLayout.JAVA_BYTE, i, (byte) (rnd.nextInt(256) & 0xF7));
            }
            codes.set(ValueLayout.JAVA_BYTE, 9L * cols + 33, (byte) 0xff);
            int sr = rows / br, sc = Math.ceilDiv(cols, bc);
            MemorySegment scales = arena.allocate(4L * sr * sc);
            for (int i = 0; i < sr * sc; i++) {
                scales.set(F32, 4L * i, 0.01f * (1 + i % 3));
            }
            scales.set(F32, 4L * (3 * sc + 1), 1e10f);
            Matrix m = Matrices.fp8Block(codes, scales, rows, cols, br, bc);
            float[] x = Reference.randomFloats(rnd, cols);
            float[] out = new float[rows];
            m.matmul(x, out, 1);
            for (int r = 0; r < rows; r++) {
                double sum = 0, abs = 0;
                for (int c = 0; c < cols; c++) {
                    double p = (double) (Fp8E4M3.decode(codes.get(ValueLayout.JAVA_BYTE, (long) r * cols + c))
                            * scales.get(F32, 4L * ((r / br) * sc + c / bc))) * x[c];
                    sum += p;
                    abs += Math.abs(p);
                }
                if (r == 9) {
                    assertTrue(Float.isNaN(out[r]), "row with a NaN code");
                } else {
                    assertEquals(sum, out[r], Reference.REL * abs, "row " + r);
                }
            }
        }
    }

    @Test
    void confinedSegmentsStayOnTheCallerThread() {
        Random rnd = new Random(13);
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment seg = Reference.bf16Random(arena, rnd, 300, 1024); // big enough to go parallel
            Matrix m = Matrices.bf16(seg, 300, 1024);
            Reference.Weights w = (r, c) -> Float.intBitsToFloat((seg.get(U16, 2L * ((long) r * 1024 + c)) & 0xffff) << 16);
            Reference.checkMatmul("bf16 confined", m, w, 1, rnd);
            Reference.checkMatmul("bf16 confined", m, w, 5, rnd);
            Reference.checkMatmul("q8 confined", Matrices.q8(m, arena), ((Q8Matrix) Matrices.q8(m, arena))::weight, 2, rnd);
        }
    }

    @Test
    void rejectsBadShapesAndBuffers() {
        Matrix m = Matrices.f32(new float[12], 3, 4);
        assertThrows(IllegalArgumentException.class, () -> m.matmul(new float[7], new float[6], 2));
        assertThrows(IllegalArgumentException.class, () -> m.matmul(new float[8], new float[5], 2));
        assertThrows(IndexOutOfBoundsException.class, () -> m.row(3, new float[4], 0));
        assertThrows(IllegalArgumentException.class, () -> Matrices.bf16(MemorySegment.ofArray(new byte[10]), 2, 3));
    }
}
