package dev.epic.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.Fp8E4M3;
import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import dev.epic.kernels.WeightLayout.Format;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Random;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * The CUDA kernels against the CPU kernels and a float64 reference, on fresh random weights in each
 * checkpoint format. Runs where a GPU is (CI has none: see README, "CUDA"); the fp32 tolerance is the
 * project's, 1e-5 of each output row's norm.
 */
@EnabledIf("gpu")
class CudaMatrixTest {
    static final double TOL = 1e-5;
    /** The bf16-activation path (x and, for f32/fp8, the weights rounded to bf16; fp32 sums). */
    static final double BF16_TOL = 1e-2;
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static CudaDevice device;

    static boolean gpu() {
        return Cuda.available();
    }

    @BeforeAll
    static void open() {
        device = CudaDevice.open(0);
    }

    @AfterAll
    static void close() {
        if (device != null) {
            device.close();
        }
    }

    /** A CPU matrix of random weights in {@code format} over native memory (as a mapped checkpoint is). */
    static Matrix randomCpu(Format format, int rows, int cols, long seed, Arena arena) {
        Random rnd = new Random(seed);
        long n = (long) rows * cols;
        switch (format) {
            case F32 -> {
                MemorySegment s = arena.allocate(n * 4, 16);
                for (long i = 0; i < n; i++) {
                    s.set(F32, 4 * i, (float) rnd.nextGaussian() * 0.1f);
                }
                return Matrices.f32(s, rows, cols);
            }
            case BF16 -> {
                MemorySegment s = arena.allocate(n * 2, 16);
                for (long i = 0; i < n; i++) {
                    s.set(U16, 2 * i, (short) (Float.floatToRawIntBits((float) rnd.nextGaussian() * 0.1f) >>> 16));
                }
                return Matrices.bf16(s, rows, cols);
            }
            default -> {
                MemorySegment s = arena.allocate(n, 16);
                for (long i = 0; i < n; i++) {
                    s.set(ValueLayout.JAVA_BYTE, i, (byte) Fp8E4M3.encode((float) rnd.nextGaussian() * 64f));
                }
                int sr = Math.ceilDiv(rows, 128);
                int sc = Math.ceilDiv(cols, 128);
                MemorySegment scales = arena.allocate((long) sr * sc * 4, 16);
                for (int i = 0; i < sr * sc; i++) {
                    scales.set(F32, 4L * i, 1e-3f * (1 + rnd.nextFloat()));
                }
                return Matrices.fp8Block(s, scales, rows, cols, 128, 128);
            }
        }
    }

    static Stream<Arguments> cases() {
        Stream.Builder<Arguments> b = Stream.builder();
        for (Format f : Format.values()) {
            b.add(Arguments.of(f, 64, 64)); // tiny model widths
            b.add(Arguments.of(f, 16, 64)); // a tiny expert's down_proj is [64, 16]; its gate [16, 64]
            b.add(Arguments.of(f, 64, 16));
            b.add(Arguments.of(f, 300, 520)); // partial fp8 blocks, rows not a multiple of 4
            b.add(Arguments.of(f, 37, 203)); // columns not a multiple of 8: the scalar path
            b.add(Arguments.of(f, 2048, 7168)); // DeepSeek-V3's expert gate/up
        }
        return b.build();
    }

    @ParameterizedTest(name = "{0} [{1} x {2}]")
    @MethodSource("cases")
    void matchesTheCpuKernelsAndFloat64(Format format, int rows, int cols) {
        try (Arena arena = Arena.ofConfined(); DeviceMatrix.Scratch scratch = new DeviceMatrix.Scratch(device)) {
            Matrix cpu = randomCpu(format, rows, cols, rows * 31L + cols, arena);
            DeviceMatrix gpu = DeviceMatrix.upload(device, cpu);
            try {
                assertEquals(format, gpu.format());
                float[] w = new float[cols];
                float[] wg = new float[cols];
                int r = rows / 3;
                cpu.row(r, w, 0);
                gpu.row(r, wg, 0);
                assertEquals(java.util.Arrays.toString(w), java.util.Arrays.toString(wg), "row " + r + " read back");
                Random rnd = new Random(rows + cols);
                for (int batch : new int[] {1, 2, 3, 8, 9, 16, 17, 64}) {
                    float[] x = new float[batch * cols];
                    for (int i = 0; i < x.length; i++) {
                        x[i] = (float) rnd.nextGaussian();
                    }
                    float[] want = new float[batch * rows];
                    cpu.matmul(x, want, batch);
                    double[] exact = float64(cpu, x, batch);
                    // both device paths at every batch, and the host entry point (which picks one)
                    long dx = scratch.buffer(0, 4L * x.length);
                    long dy = scratch.buffer(1, 4L * want.length);
                    device.upload(x, 0, x.length, dx);
                    float[] got = new float[want.length];
                    // the tensor-core path, against float64 at its own tolerance
                    long dxh = scratch.buffer(2, 2L * x.length);
                    device.kernels().narrowActivations(dx, dxh, x.length);
                    float[] bf = new float[want.length];
                    java.util.Arrays.fill(bf, Float.NaN);
                    gpu.gemmBf16(dxh, dy, batch, scratch);
                    device.download(dy, bf, 0, bf.length);
                    assertClose(exact, bf, batch, rows, format + " [" + rows + " x " + cols + "] batch " + batch
                            + " gemmBf16 vs float64", BF16_TOL);
                    for (String path : new String[] {"matvec", "gemm", "matmul"}) {
                        java.util.Arrays.fill(got, Float.NaN);
                        switch (path) {
                            case "matvec" -> {
                                gpu.matvec(dx, dy, batch);
                                device.download(dy, got, 0, got.length);
                            }
                            case "gemm" -> {
                                gpu.gemm(dx, dy, batch, scratch);
                                device.download(dy, got, 0, got.length);
                            }
                            default -> gpu.matmul(x, got, batch);
                        }
                        String what = format + " [" + rows + " x " + cols + "] batch " + batch + " " + path;
                        assertClose(exact, got, batch, rows, what + " vs float64");
                        assertClose(toDouble(want), got, batch, rows, what + " vs CPU");
                    }
                }
            } finally {
                gpu.close();
            }
        }
    }

    /** The SwiGLU of experts that run through cuBLAS (the batched kernels fuse it; CudaShardTest). */
    @Test
    void swigluIsSiluOfGateTimesUp() {
        int n = 3 * 257;
        Random rnd = new Random(7);
        float[] g = new float[n];
        float[] u = new float[n];
        for (int i = 0; i < n; i++) {
            g[i] = (float) rnd.nextGaussian() * 4;
            u[i] = (float) rnd.nextGaussian();
        }
        float[] want = new float[n];
        dev.epic.kernels.VectorOps.swiglu(g, u, want);
        try (DeviceMatrix.Scratch scratch = new DeviceMatrix.Scratch(device)) {
            long dg = scratch.buffer(0, 4L * n);
            long du = scratch.buffer(1, 4L * n);
            long dh = scratch.buffer(2, 4L * n);
            device.upload(g, 0, n, dg);
            device.upload(u, 0, n, du);
            float[] got = new float[n];
            java.util.Arrays.fill(got, Float.NaN);
            device.kernels().swiglu(dg, du, dh, n);
            device.download(dh, got, 0, n);
            assertClose(toDouble(want), got, 3, 257, "swiglu");
        }
    }

    /** Each row kernel declares the weight rows its blocks compute; the grids are sized by them. */
    @Test
    void rowKernelsDeclareTheirRowsPerBlock() {
        CudaKernels k = device.kernels();
        for (String name : CudaKernels.rowKernels()) {
            int rows = k.rowsPerBlock(name);
            assertTrue(rows >= 1 && rows <= 8, name + ": " + rows);
        }
        org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class, () -> k.rowsPerBlock("swiglu"));
    }

    /** The second start loads what the first compiled (NVRTC takes 10–20 s), and the loaded kernels run. */
    @Test
    void kernelsCompiledOnceAreLoadedFromTheCache(@TempDir Path dir) throws Exception {
        KernelCache cache = new KernelCache(dir);
        int n = 1000;
        for (boolean cached : new boolean[] {false, true}) {
            CudaKernels k = CudaKernels.compile(device, cache);
            try (DeviceMatrix.Scratch scratch = new DeviceMatrix.Scratch(device)) {
                assertEquals(cached, k.fromCache);
                long buffer = scratch.buffer(0, 4L * n);
                float value = cached ? 2.5f : -1f;
                k.launch("fill_f32", k.strideBlocks(n, 256), 1, 256, buffer, (long) n, value);
                float[] got = new float[n];
                device.download(buffer, got, 0, n);
                for (float v : got) {
                    assertEquals(value, v);
                }
            } finally {
                k.close();
            }
        }
        try (var files = Files.list(dir)) {
            assertEquals(1, files.count(), "one compiled image");
        }
    }

    @Test
    void quantisedCopiesAreRefusedByName() {
        try (Arena arena = Arena.ofConfined()) {
            Matrix q4 = Matrices.q4(randomCpu(Format.F32, 32, 64, 3, arena), arena);
            var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> DeviceMatrix.upload(device, q4));
            assertTrue(e.getMessage().contains("q8, q4"), e.getMessage());
        }
    }

    static double[] float64(Matrix m, float[] x, int batch) {
        int rows = m.rows();
        int cols = m.cols();
        double[] out = new double[batch * rows];
        float[] w = new float[cols];
        for (int r = 0; r < rows; r++) {
            m.row(r, w, 0);
            for (int b = 0; b < batch; b++) {
                double s = 0;
                for (int c = 0; c < cols; c++) {
                    s += (double) w[c] * x[b * cols + c];
                }
                out[b * rows + r] = s;
            }
        }
        return out;
    }

    static double[] toDouble(float[] a) {
        double[] d = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            d[i] = a[i];
        }
        return d;
    }

    static void assertClose(double[] want, float[] got, int batch, int rows, String what) {
        assertClose(want, got, batch, rows, what, TOL);
    }

    /** Per batch row: every element written (no NaN) and ||got - want|| <= tol * ||want||. */
    static void assertClose(double[] want, float[] got, int batch, int rows, String what, double tol) {
        for (int b = 0; b < batch; b++) {
            double err = 0;
            double norm = 0;
            for (int r = 0; r < rows; r++) {
                float g = got[b * rows + r];
                assertFalse(Float.isNaN(g), what + ": row " + b + " element " + r + " not written");
                double d = g - want[b * rows + r];
                err += d * d;
                norm += want[b * rows + r] * want[b * rows + r];
            }
            double rel = Math.sqrt(err) / Math.max(Math.sqrt(norm), 1e-30);
            assertTrue(rel <= tol, what + ": batch row " + b + " relative error " + rel);
        }
    }
}
