package dev.epic.kernels.cuda;

import static dev.epic.kernels.cuda.Cuda.check;
import static org.bytedeco.cuda.global.cudart.CUDA_SUCCESS;
import static org.bytedeco.cuda.global.cudart.cuLaunchKernel;
import static org.bytedeco.cuda.global.cudart.cuModuleGetFunction;
import static org.bytedeco.cuda.global.cudart.cuModuleGetGlobal;
import static org.bytedeco.cuda.global.cudart.cuModuleLoadData;
import static org.bytedeco.cuda.global.cudart.cuModuleUnload;
import static org.bytedeco.cuda.global.nvrtc.NVRTC_SUCCESS;
import static org.bytedeco.cuda.global.nvrtc.nvrtcCompileProgram;
import static org.bytedeco.cuda.global.nvrtc.nvrtcCreateProgram;
import static org.bytedeco.cuda.global.nvrtc.nvrtcDestroyProgram;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetCUBIN;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetCUBINSize;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetErrorString;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetProgramLog;
import static org.bytedeco.cuda.global.nvrtc.nvrtcGetProgramLogSize;
import static org.bytedeco.cuda.global.nvrtc.nvrtcVersion;

import dev.epic.kernels.WeightLayout.Format;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.bytedeco.cuda.cudart.CUfunc_st;
import org.bytedeco.cuda.cudart.CUmod_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.cuda.cublas.cublasContext;
import org.bytedeco.cuda.nvrtc._nvrtcProgram;
import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.FloatPointer;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.PointerPointer;
import org.bytedeco.javacpp.SizeTPointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The kernels of {@code epic_kernels.cu}, compiled by NVRTC for the device's own architecture (so
 * no toolkit is needed at build time and every GPU gets native code), and the cuBLAS handle for
 * large products. Launch arguments are device addresses (long), ints, longs and floats.
 */
public final class CudaKernels implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CudaKernels.class);
    static final String SOURCE = "/dev/epic/kernels/cuda/epic_kernels.cu";
    /** Batch rows a row kernel's block carries: kernels come tiled for 1 and for 8 (T in the source). */
    static final int TILE = 8;
    /** Threads per block of the row kernels (THREADS in the source): they share one weight row. */
    static final int ROW_THREADS = 128;

    private final CudaDevice device;
    private final CUmod_st module;
    private final Map<String, CUfunc_st> functions = new HashMap<>();
    private final Map<String, Integer> rowsPerBlock;
    /** Launch arguments: eight bytes per argument, and the array of their addresses cuLaunchKernel takes. */
    private static final int MAX_ARGS = 16;
    private final Arena arena = Arena.ofShared();
    private final MemorySegment argValues = arena.allocate(8L * MAX_ARGS, 8);
    private final MemorySegment argAddresses = arena.allocate(8L * MAX_ARGS, 8);
    private final PointerPointer<Pointer> params;
    /** cuBLAS's alpha and beta (1 and 0), host floats made once: no JavaCPP allocation per product. */
    private final MemorySegment constants = arena.allocate(8, 4);
    final FloatPointer one;
    final FloatPointer zero;
    private cublasContext blas;
    private boolean blasTried;
    /** Whether the module was loaded from the on-disk cache rather than compiled now. */
    final boolean fromCache;

    private CudaKernels(CudaDevice device, CUmod_st module, boolean fromCache) {
        this.device = device;
        this.module = module;
        this.fromCache = fromCache;
        this.rowsPerBlock = rowsPerBlock(device, module);
        for (int i = 0; i < MAX_ARGS; i++) {
            argAddresses.set(ValueLayout.JAVA_LONG, 8L * i, argValues.address() + 8L * i);
        }
        long base = argAddresses.address();
        this.params = new PointerPointer<>() {
            {
                address = base;
            }
        };
        constants.set(ValueLayout.JAVA_FLOAT, 0, 1f);
        constants.set(ValueLayout.JAVA_FLOAT, 4, 0f);
        this.one = floatsAt(constants.address());
        this.zero = floatsAt(constants.address() + 4);
    }

    static CudaKernels compile(CudaDevice device) {
        return compile(device, KernelCache.standard());
    }

    /** The kernels for {@code device}: loaded from {@code cache} when compiled there before, else compiled and stored. */
    static CudaKernels compile(CudaDevice device, KernelCache cache) {
        String source = source();
        String arch = "--gpu-architecture=sm_" + device.computeCapability();
        long t0 = System.nanoTime();
        String compiler;
        try {
            int[] major = new int[1];
            int[] minor = new int[1];
            nvrtcVersion(major, minor);
            compiler = "NVRTC " + major[0] + "." + minor[0];
        } catch (LinkageError e) { // no libnvrtc.so.13 on the library path
            throw new CudaException("NVRTC, which compiles the kernels, did not load (the CUDA 13 toolkit's "
                    + "libnvrtc.so.13 must be on LD_LIBRARY_PATH): " + e, e);
        }
        String key = KernelCache.key(source, arch, compiler);
        byte[] cached = cache.get(key);
        if (cached != null) {
            CUmod_st module = new CUmod_st();
            try (BytePointer image = new BytePointer(cached)) {
                if (cuModuleLoadData(module, image) == CUDA_SUCCESS) {
                    log.info("loaded the CUDA kernels for sm_{} compiled earlier by {} ({} ms)",
                            device.computeCapability(), compiler, (System.nanoTime() - t0) / 1_000_000);
                    return new CudaKernels(device, module, true);
                }
            }
            cache.remove(key); // not loadable here: compile afresh
        }
        byte[] cubin = nvrtc(source, arch);
        CUmod_st module = new CUmod_st();
        try (BytePointer image = new BytePointer(cubin)) {
            check(cuModuleLoadData(module, image), "cuModuleLoadData");
        }
        cache.put(key, cubin);
        log.info("compiled the CUDA kernels with {} for sm_{} in {} ms", compiler, device.computeCapability(),
                (System.nanoTime() - t0) / 1_000_000);
        return new CudaKernels(device, module, false);
    }

    /** A FloatPointer at an address (device memory, or host memory we own): JavaCPP passes it through. */
    static FloatPointer floatsAt(long at) {
        // (not named "address": inside the subclass that name is Pointer's own field)
        return new FloatPointer() {
            {
                address = at;
            }
        };
    }

    private static String source() {
        try (InputStream in = CudaKernels.class.getResourceAsStream(SOURCE)) {
            if (in == null) {
                throw new IllegalStateException("kernel source " + SOURCE + " is missing from the classpath");
            }
            return new String(in.readAllBytes(), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static byte[] nvrtc(String source, String arch) {
        _nvrtcProgram program = new _nvrtcProgram();
        checkNvrtc(nvrtcCreateProgram(program, new BytePointer(source), new BytePointer("epic_kernels.cu"), 0,
                (PointerPointer) null, (PointerPointer) null), "nvrtcCreateProgram");
        try {
            // No fast math: expf and division stay IEEE-accurate, as the CPU kernels' contract needs.
            String[] options = {arch, "-std=c++17"};
            int rc = nvrtcCompileProgram(program, options.length, new PointerPointer<>(options));
            if (rc != NVRTC_SUCCESS) {
                throw new CudaException("NVRTC could not compile " + SOURCE + " (" + arch + "): "
                        + nvrtcGetErrorString(rc).getString() + "\n" + programLog(program));
            }
            try (SizeTPointer size = new SizeTPointer(1)) {
                checkNvrtc(nvrtcGetCUBINSize(program, size), "nvrtcGetCUBINSize");
                byte[] cubin = new byte[(int) size.get()];
                checkNvrtc(nvrtcGetCUBIN(program, cubin), "nvrtcGetCUBIN");
                return cubin;
            }
        } finally {
            nvrtcDestroyProgram(program);
        }
    }

    private static String programLog(_nvrtcProgram program) {
        try (SizeTPointer size = new SizeTPointer(1)) {
            if (nvrtcGetProgramLogSize(program, size) != NVRTC_SUCCESS) {
                return "";
            }
            byte[] text = new byte[(int) size.get()];
            nvrtcGetProgramLog(program, text);
            return new String(text, StandardCharsets.UTF_8).trim();
        }
    }

    private static void checkNvrtc(int rc, String call) {
        if (rc != NVRTC_SUCCESS) {
            throw new CudaException(call + " failed: " + nvrtcGetErrorString(rc).getString());
        }
    }

    public CudaDevice device() {
        return device;
    }

    private CUfunc_st function(String name) {
        return functions.computeIfAbsent(name, n -> {
            CUfunc_st f = new CUfunc_st();
            check(cuModuleGetFunction(f, module, n), "cuModuleGetFunction(" + n + ")");
            return f;
        });
    }

    /**
     * Weight rows one block of row kernel {@code name} (say {@code experts_down1_fp8}) computes, as the
     * source declares it: the host sizes its grids by it, so the rule lives in the kernels alone.
     */
    public int rowsPerBlock(String name) {
        Integer rows = rowsPerBlock.get(name);
        if (rows == null) {
            throw new IllegalArgumentException("no row kernel " + name);
        }
        return rows;
    }

    /** The row kernels' tilings: token rows per pass over the weights (T in the source). */
    static final int[] TILINGS = {1, 2, 4, TILE};

    /** The kernels' name for weights in {@code format} ({@code widen_} + it, {@code matvec1_} + it, ...). */
    static String suffix(Format format) {
        return switch (format) {
            case F32 -> "f32";
            case BF16 -> "bf16";
            case FP8_BLOCK -> "fp8";
        };
    }

    /** Row kernel {@code kind} (matvec, experts_gate_up, experts_down) tiled for {@code tile} rows, for {@code format}. */
    static String rowKernel(String kind, int tile, Format format) {
        return kind + tile + "_" + suffix(format);
    }

    /** Every row kernel: each kind in every tiling and weight format (TILED in the source). */
    static List<String> rowKernels() {
        List<String> names = new ArrayList<>();
        for (String kind : List.of("matvec", "experts_gate_up", "experts_down")) {
            for (int tile : TILINGS) {
                for (Format format : Format.values()) {
                    names.add(rowKernel(kind, tile, format));
                }
            }
        }
        return names;
    }

    /** Each row kernel's {@code int <name>_rows}, read once from the module. */
    private static Map<String, Integer> rowsPerBlock(CudaDevice device, CUmod_st module) {
        Map<String, Integer> rows = new HashMap<>();
        try (CudaDevice.Held held = device.hold()) {
            for (String name : rowKernels()) {
                long[] address = new long[1];
                try (SizeTPointer bytes = new SizeTPointer(1)) {
                    check(cuModuleGetGlobal(address, bytes, module, name + "_rows"), "cuModuleGetGlobal(" + name + "_rows)");
                }
                byte[] value = device.downloadBytes(address[0], Integer.BYTES);
                rows.put(name, MemorySegment.ofArray(value).get(ValueLayout.JAVA_INT_UNALIGNED, 0));
            }
        }
        return Map.copyOf(rows);
    }

    /**
     * Launches kernel {@code name} on the default stream over a (gridX, gridY) grid of blocks of
     * {@code threads}. Arguments: Long (device addresses, 64-bit integers), Integer, Float.
     */
    public void launch(String name, int gridX, int gridY, int threads, Object... args) {
        if (args.length > MAX_ARGS) {
            throw new IllegalArgumentException(name + ": " + args.length + " arguments, at most " + MAX_ARGS);
        }
        try (CudaDevice.Held h = device.hold()) {
            // The driver copies the values at launch, so one native block serves every launch (under the lock).
            for (int i = 0; i < args.length; i++) {
                long at = 8L * i;
                switch (args[i]) {
                    case Long v -> argValues.set(ValueLayout.JAVA_LONG, at, v);
                    case Integer v -> argValues.set(ValueLayout.JAVA_INT, at, v);
                    case Float v -> argValues.set(ValueLayout.JAVA_FLOAT, at, v);
                    default -> throw new IllegalArgumentException("kernel argument " + i + " of " + name
                            + " is a " + args[i].getClass().getSimpleName());
                }
            }
            check(cuLaunchKernel(function(name), gridX, gridY, 1, threads, 1, 1, 0, (CUstream_st) null, params,
                    (PointerPointer) null), "cuLaunchKernel(" + name + ")");
        }
    }

    /** Blocks for a grid-stride loop over n elements: enough to fill the device, no more than needed. */
    int strideBlocks(long n, int threads) {
        long need = (n + threads - 1) / threads;
        return (int) Math.max(1, Math.min(need, device.multiprocessors() * 8L));
    }

    /** h[i] = silu(g[i]) * u[i] for i in [0, n), device floats. */
    public void swiglu(long g, long u, long h, long n) {
        launch("swiglu", strideBlocks(n, 256), 1, 256, g, u, h, n);
    }

    /** xs[p] = x[rowOf[p]] for p in [0, pairs): rows of {@code hidden} device floats; rowOf device ints. */
    public void gatherRows(long x, long rowOf, long xs, int pairs, int hidden) {
        long n = (long) pairs * hidden;
        launch("gather_rows", strideBlocks(n, 256), 1, 256, x, rowOf, xs, pairs, hidden);
    }

    /**
     * out[r] (device doubles) = sum over j in [first[r], first[r+1]) of (double) (w[p] * ys[p]), p =
     * pairOf[j], in that order: each term rounded to float, summed in double.
     */
    public void combineRows(long ys, long first, long pairOf, long w, long out, int rows, int hidden) {
        long n = (long) rows * hidden;
        launch("combine_rows", strideBlocks(n, 256), 1, 256, ys, first, pairOf, w, out, rows, hidden);
    }

    /** out[i] = bf16(x[i]), rounded to nearest even, for i in [0, n): the bf16-activation path's inputs. */
    public void narrowActivations(long x, long out, long n) {
        launch("narrow_activations", strideBlocks(n, 256), 1, 256, x, out, n);
    }

    /** Whether cuBLAS loaded (large products use it). */
    public boolean hasBlas() {
        return blas() != null;
    }

    /** The cuBLAS handle, or null when cuBLAS did not load (matvec kernels then serve every batch). */
    cublasContext blas() {
        try (CudaDevice.Held h = device.hold()) {
            if (!blasTried) {
                blasTried = true;
                try {
                    cublasContext handle = new cublasContext();
                    int rc = org.bytedeco.cuda.global.cublas.cublasCreate_v2(handle);
                    if (rc != org.bytedeco.cuda.global.cublas.CUBLAS_STATUS_SUCCESS) {
                        throw new CudaException("cublasCreate failed: status " + rc);
                    }
                    // Default math: SGEMM stays plain fp32 (TF32 only when asked for), bf16 products use
                    // the tensor cores with fp32 accumulation.
                    org.bytedeco.cuda.global.cublas.cublasSetMathMode(handle,
                            org.bytedeco.cuda.global.cublas.CUBLAS_DEFAULT_MATH);
                    blas = handle;
                } catch (Throwable e) {
                    log.warn("cuBLAS is not usable ({}); large batches run the matvec kernels", e.toString());
                }
            }
            return blas;
        }
    }

    @Override
    public void close() {
        try (CudaDevice.Held h = device.hold()) {
            if (blas != null) {
                org.bytedeco.cuda.global.cublas.cublasDestroy_v2(blas);
                blas = null;
            }
            cuModuleUnload(module);
            arena.close();
        }
    }
}
