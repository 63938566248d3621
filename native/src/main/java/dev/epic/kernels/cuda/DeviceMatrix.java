package dev.epic.kernels.cuda;

import static org.bytedeco.cuda.global.cublas.CUBLAS_COMPUTE_32F;
import static org.bytedeco.cuda.global.cublas.CUBLAS_GEMM_DEFAULT;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_N;
import static org.bytedeco.cuda.global.cublas.CUBLAS_OP_T;
import static org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS;
import static org.bytedeco.cuda.global.cublas.cublasGemmEx;
import static org.bytedeco.cuda.global.cublas.cublasSgemm_v2;
import static org.bytedeco.cuda.global.cudart.CUDA_R_16BF;
import static org.bytedeco.cuda.global.cudart.CUDA_R_32F;

import dev.epic.kernels.Fp8E4M3;
import dev.epic.kernels.Matrix;
import dev.epic.kernels.WeightLayout;
import dev.epic.kernels.WeightLayout.Format;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.javacpp.FloatPointer;

/**
 * A weight matrix W[rows x cols] resident in GPU memory in its checkpoint format (fp32, bf16, or
 * e4m3 codes with fp32 block scales), never widened in place. Small batches (decode) run the row
 * kernels: a block of threads per output row splits its columns, widens each weight in registers
 * and applies it to 1, 2, 4 or 8 rows of x. Larger batches widen W once into an fp32 scratch and
 * run cuBLAS SGEMM (no TF32). Either way the arithmetic is the CPU kernels': fp32 weights, fp32
 * products and sums, in another order.
 */
public final class DeviceMatrix implements Matrix, AutoCloseable {
    /** Above this many rows a product goes through cuBLAS (when it loaded). */
    public static final int MATVEC_MAX_BATCH = 16;

    private final CudaKernels kernels;
    private final CudaDevice device;
    private final Format format;
    private final int rows;
    private final int cols;
    private final long data;
    private final long scales;
    private final int blockRows;
    private final int blockCols;
    private final long bytes;
    private final String widen;
    private final String narrow;

    private DeviceMatrix(CudaKernels kernels, Format format, int rows, int cols, long data, long scales,
            int blockRows, int blockCols, long bytes) {
        this.kernels = kernels;
        this.device = kernels.device();
        this.format = format;
        this.rows = rows;
        this.cols = cols;
        this.data = data;
        this.scales = scales;
        this.blockRows = blockRows;
        this.blockCols = blockCols;
        this.bytes = bytes;
        this.widen = "widen_" + CudaKernels.suffix(format);
        this.narrow = "narrow_" + CudaKernels.suffix(format);
    }

    /** Copies a CPU matrix's storage to the device (f32, bf16 and fp8-block matrices). */
    public static DeviceMatrix upload(CudaDevice device, Matrix m) {
        WeightLayout layout = m.layout();
        if (layout == null) {
            throw new IllegalArgumentException("a " + m.getClass().getSimpleName() + " [" + m.rows() + ", " + m.cols()
                    + "] cannot run on the GPU: its weights must be f32, bf16 or fp8 (e4m3 with block scales) as "
                    + "the checkpoint stores them; quantised copies (q8, q4) and f16 run on the CPU only");
        }
        CudaKernels kernels = device.kernels();
        long dataBytes = (long) m.rows() * m.cols() * elementBytes(layout.format());
        long data = device.alloc(dataBytes);
        long scales = 0;
        long total = dataBytes;
        try {
            device.upload(layout.data().asSlice(0, dataBytes), data);
            if (layout.format() == Format.FP8_BLOCK) {
                long scaleBytes = (long) Math.ceilDiv(m.rows(), layout.blockRows()) * Math.ceilDiv(m.cols(), layout.blockCols())
                        * Float.BYTES;
                scales = device.alloc(scaleBytes);
                device.upload(layout.scales().asSlice(0, scaleBytes), scales);
                total += scaleBytes;
            }
        } catch (RuntimeException e) {
            device.free(data);
            device.free(scales);
            throw e;
        }
        return new DeviceMatrix(kernels, layout.format(), m.rows(), m.cols(), data, scales, layout.blockRows(),
                layout.blockCols(), total);
    }

    /**
     * Pseudo-random weights made on the device (benchmarks at full model size without a checkpoint):
     * bf16 in [-scale, scale), or e4m3 codes with 128 x 128 blocks of scale {@code scale / 256}.
     */
    public static DeviceMatrix random(CudaDevice device, Format format, int rows, int cols, int seed, float scale) {
        CudaKernels k = device.kernels();
        long n = (long) rows * cols;
        if (format == Format.F32) {
            throw new IllegalArgumentException("random weights come in bf16 or fp8");
        }
        long data = device.alloc(n * elementBytes(format));
        try {
            return random(k, device, format, rows, cols, seed, scale, data);
        } catch (RuntimeException e) {
            device.free(data);
            throw e;
        }
    }

    private static DeviceMatrix random(CudaKernels k, CudaDevice device, Format format, int rows, int cols, int seed,
            float scale, long data) {
        long n = (long) rows * cols;
        switch (format) {
            case BF16 -> k.launch("fill_bf16", k.strideBlocks(n, 256), 1, 256, data, n, seed, scale);
            case FP8_BLOCK -> k.launch("fill_fp8", k.strideBlocks(n, 256), 1, 256, data, n, seed);
            default -> throw new IllegalArgumentException("random weights come in bf16 or fp8");
        }
        if (format != Format.FP8_BLOCK) {
            return new DeviceMatrix(k, format, rows, cols, data, 0, 0, 0, n * elementBytes(format));
        }
        long blocks = (long) Math.ceilDiv(rows, 128) * Math.ceilDiv(cols, 128);
        long scales = device.alloc(blocks * Float.BYTES);
        k.launch("fill_f32", k.strideBlocks(blocks, 256), 1, 256, scales, blocks, scale / 256f);
        return new DeviceMatrix(k, format, rows, cols, data, scales, 128, 128, n + blocks * Float.BYTES);
    }

    private static int elementBytes(Format f) {
        return switch (f) {
            case F32 -> 4;
            case BF16 -> 2;
            case FP8_BLOCK -> 1;
        };
    }

    private int scaleCols() {
        return format == Format.FP8_BLOCK ? Math.ceilDiv(cols, blockCols) : 0;
    }

    /**
     * out[b*rows + r] = sum_c W[r,c] * x[b*cols + c] on device floats (x: batch x cols, out: batch x
     * rows), queued on the default stream.
     */
    public void matmul(long x, long out, int batch, Scratch scratch) {
        if (batch <= MATVEC_MAX_BATCH || kernels.blas() == null) {
            matvec(x, out, batch);
        } else {
            gemm(x, out, batch, scratch);
        }
    }

    /** The row kernels for any batch: a block per output row (or few) and tile of 1, 2, 4 or 8 rows of x. */
    public void matvec(long x, long out, int batch) {
        int tile = tile(batch);
        int chunk = MAX_GRID_Y * tile; // grid.y is at most 65535 blocks
        for (int b = 0; b < batch; b += chunk) {
            int n = Math.min(chunk, batch - b);
            String kernel = kernel("matvec", tile);
            kernels.launch(kernel, Math.ceilDiv(rows, kernels.rowsPerBlock(kernel)), Math.ceilDiv(n, tile),
                    CudaKernels.ROW_THREADS, data, scales, scaleCols(), blockRows, blockCols,
                    x + (long) b * cols * Float.BYTES, out + (long) b * rows * Float.BYTES, rows, cols, n);
        }
    }

    private static final int MAX_GRID_Y = 65535;

    /**
     * The smallest tiling (1, 2, 4 or 8 rows per pass over the weights) that covers {@code maxRows}
     * in one pass: fewer accumulators, fewer registers, more blocks resident (decode is mostly 1).
     */
    private static int tile(int maxRows) {
        for (int t : CudaKernels.TILINGS) {
            if (maxRows <= t) {
                return t;
            }
        }
        return CudaKernels.TILE;
    }

    private String kernel(String name, int tile) {
        return CudaKernels.rowKernel(name, tile, format);
    }

    /** W widened into fp32 scratch, then cuBLAS SGEMM: out^T = W x^T in cuBLAS's column-major terms. */
    public void gemm(long x, long out, int batch, Scratch scratch) {
        cublasContext blas = kernels.blas();
        if (blas == null) {
            throw new CudaException("cuBLAS is not available on " + device);
        }
        long w32 = scratch.widened((long) rows * cols * Float.BYTES);
        long n = (long) rows * cols;
        kernels.launch(widen, kernels.strideBlocks(n, 256), 1, 256, data, scales, scaleCols(), blockRows,
                blockCols, w32, rows, cols);
        try (CudaDevice.Held h = device.hold()) {
            // Row-major W [rows x cols] is column-major [cols x rows]: out(rows x batch) = op_T(W) * x(cols x batch).
            int rc = cublasSgemm_v2(blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, batch, cols, kernels.one, at(w32), cols, at(x),
                    cols, kernels.zero, at(out), rows);
            if (rc != CUBLAS_STATUS_SUCCESS) {
                throw new CudaException("cublasSgemm failed: status " + rc);
            }
        }
    }

    /**
     * The bf16-activation product on the tensor cores: out (fp32, batch x rows) = W xh^T with xh
     * the batch's rows already rounded to bf16 (device, batch x cols) and fp32 accumulation. bf16
     * weights are used as stored; f32 and fp8 weights are rounded to bf16 into scratch first. A
     * faster path than the fp32 contract, with its own tolerance (1e-2 of a row's norm; a few 1e-3 measured).
     */
    public void gemmBf16(long xh, long out, int batch, Scratch scratch) {
        cublasContext blas = kernels.blas();
        if (blas == null) {
            throw new CudaException("cuBLAS is not available on " + device);
        }
        long a = data;
        if (format != Format.BF16) {
            a = scratch.widened((long) rows * cols * 2);
            long n = (long) rows * cols;
            kernels.launch(narrow, kernels.strideBlocks(n, 256), 1, 256, data, scales, scaleCols(), blockRows, blockCols,
                    a, rows, cols);
        }
        try (CudaDevice.Held h = device.hold()) {
            int rc = cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, rows, batch, cols, kernels.one, at(a), CUDA_R_16BF, cols,
                    at(xh), CUDA_R_16BF, cols, kernels.zero, at(out), CUDA_R_32F, rows, CUBLAS_COMPUTE_32F,
                    CUBLAS_GEMM_DEFAULT);
            if (rc != CUBLAS_STATUS_SUCCESS) {
                throw new CudaException("cublasGemmEx (bf16) failed: status " + rc);
            }
        }
    }

    /**
     * Every expert of a message in two launches (gate and up, then down) instead of two per expert:
     * {@code table} (device) holds six addresses per expert, from {@link #addresses}; expert i's
     * rows are [starts[i], starts[i+1]) of xs, h and ys (device ints and floats). Experts with more
     * than {@code maxRows} rows are skipped (they take cuBLAS). {@code like} is any of the experts'
     * gate and {@code likeDown} any down_proj: all share format and shape.
     */
    public static void experts(DeviceMatrix like, DeviceMatrix likeDown, long table, long starts, int count, long xs,
            long h, long ys, int maxRows, int rowsOfLargest) {
        if (count == 0) {
            return;
        }
        int tile = tile(rowsOfLargest);
        int inter = like.rows;
        int hidden = like.cols;
        String gateUp = like.kernel("experts_gate_up", tile);
        String down = likeDown.kernel("experts_down", tile);
        like.kernels.launch(gateUp, Math.ceilDiv(inter, like.kernels.rowsPerBlock(gateUp)), count,
                CudaKernels.ROW_THREADS, table, starts, like.scaleCols(), like.blockRows, like.blockCols, xs, h, inter,
                hidden, maxRows);
        like.kernels.launch(down, Math.ceilDiv(hidden, like.kernels.rowsPerBlock(down)), count,
                CudaKernels.ROW_THREADS, table, starts, likeDown.scaleCols(), likeDown.blockRows, likeDown.blockCols,
                h, ys, hidden, inter, maxRows);
    }

    /** Writes this expert's six table entries (gate, gate scales, up, up scales, down, down scales) at {@code at}. */
    public static void addresses(DeviceMatrix gate, DeviceMatrix up, DeviceMatrix down, long[] table, int at) {
        table[at] = gate.data;
        table[at + 1] = gate.scales;
        table[at + 2] = up.data;
        table[at + 3] = up.scales;
        table[at + 4] = down.data;
        table[at + 5] = down.scales;
    }

    /** A FloatPointer at a device address, for cuBLAS. */
    private static FloatPointer at(long deviceAddress) {
        return CudaKernels.floatsAt(deviceAddress);
    }

    /** Host arrays in and out: uploads x, runs {@link #matmul(long, long, int, Scratch)}, downloads out. */
    @Override
    public void matmul(float[] x, float[] out, int batch) {
        try (CudaDevice.Held h = device.hold(); Scratch s = new Scratch(device)) {
            long dx = s.buffer(0, (long) batch * cols * Float.BYTES);
            long dy = s.buffer(1, (long) batch * rows * Float.BYTES);
            device.upload(x, 0, batch * cols, dx);
            matmul(dx, dy, batch, s);
            device.download(dy, out, 0, batch * rows);
        }
    }

    @Override
    public void row(int r, float[] dst, int off) {
        int eb = elementBytes(format);
        ByteBuffer raw = ByteBuffer.wrap(device.downloadBytes(data + (long) r * cols * eb, cols * eb))
                .order(ByteOrder.LITTLE_ENDIAN);
        float[] blockScales = null;
        if (format == Format.FP8_BLOCK) {
            int sc = scaleCols();
            ByteBuffer s = ByteBuffer.wrap(device.downloadBytes(scales + (long) (r / blockRows) * sc * Float.BYTES,
                    sc * Float.BYTES)).order(ByteOrder.LITTLE_ENDIAN);
            blockScales = new float[sc];
            s.asFloatBuffer().get(blockScales);
        }
        for (int c = 0; c < cols; c++) {
            dst[off + c] = switch (format) {
                case F32 -> raw.getFloat(c * 4);
                case BF16 -> Float.intBitsToFloat((raw.getShort(c * 2) & 0xffff) << 16);
                case FP8_BLOCK -> Fp8E4M3.decode(raw.get(c)) * blockScales[c / blockCols];
            };
        }
    }

    @Override
    public int rows() {
        return rows;
    }

    @Override
    public int cols() {
        return cols;
    }

    public Format format() {
        return format;
    }

    @Override
    public long storageBytes() {
        return bytes;
    }

    private boolean closed;

    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            device.free(data);
            device.free(scales);
        }
    }

    /**
     * Device scratch for products (activations and widened weights), grown as needed and reused:
     * one per driving thread. Buffers are numbered by the caller.
     */
    public static final class Scratch implements AutoCloseable {
        private final CudaDevice device;
        private final long[] address = new long[12];
        private final long[] size = new long[12];
        private long widened;
        private long widenedSize;

        public Scratch(CudaDevice device) {
            this.device = device;
        }

        /** Device buffer {@code slot} (0..11) of at least {@code bytes}; contents are not kept on growth. */
        public long buffer(int slot, long bytes) {
            if (size[slot] < bytes) {
                device.free(address[slot]);
                address[slot] = 0;
                size[slot] = 0;
                address[slot] = device.alloc(bytes);
                size[slot] = bytes;
            }
            return address[slot];
        }

        long widened(long bytes) {
            if (widenedSize < bytes) {
                device.free(widened);
                widened = 0;
                widenedSize = 0;
                widened = device.alloc(bytes);
                widenedSize = bytes;
            }
            return widened;
        }

        @Override
        public void close() {
            for (int i = 0; i < address.length; i++) {
                device.free(address[i]);
                address[i] = 0;
                size[i] = 0;
            }
            device.free(widened);
            widened = 0;
            widenedSize = 0;
        }
    }
}
