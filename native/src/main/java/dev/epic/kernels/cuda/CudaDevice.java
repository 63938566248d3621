package dev.epic.kernels.cuda;

import static dev.epic.kernels.cuda.Cuda.check;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR;
import static org.bytedeco.cuda.global.cudart.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT;
import static org.bytedeco.cuda.global.cudart.CU_EVENT_DEFAULT;
import static org.bytedeco.cuda.global.cudart.cuCtxSetCurrent;
import static org.bytedeco.cuda.global.cudart.cuCtxSynchronize;
import static org.bytedeco.cuda.global.cudart.cuDeviceGet;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetAttribute;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetName;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRelease;
import static org.bytedeco.cuda.global.cudart.cuDevicePrimaryCtxRetain;
import static org.bytedeco.cuda.global.cudart.cuDeviceTotalMem;
import static org.bytedeco.cuda.global.cudart.cuEventCreate;
import static org.bytedeco.cuda.global.cudart.cuEventDestroy;
import static org.bytedeco.cuda.global.cudart.cuEventElapsedTime;
import static org.bytedeco.cuda.global.cudart.cuEventRecord;
import static org.bytedeco.cuda.global.cudart.cuEventSynchronize;
import static org.bytedeco.cuda.global.cudart.cuMemAlloc;
import static org.bytedeco.cuda.global.cudart.cuMemAllocHost;
import static org.bytedeco.cuda.global.cudart.cuMemFree;
import static org.bytedeco.cuda.global.cudart.cuMemFreeHost;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoD;
import static org.bytedeco.cuda.global.cudart.cuMemcpyDtoH;
import static org.bytedeco.cuda.global.cudart.cuMemcpyHtoD;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.concurrent.locks.ReentrantLock;
import org.bytedeco.cuda.cudart.CUctx_st;
import org.bytedeco.cuda.cudart.CUevent_st;
import org.bytedeco.cuda.cudart.CUstream_st;
import org.bytedeco.javacpp.Pointer;
import org.bytedeco.javacpp.SizeTPointer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One GPU, driven through its primary context on the default stream, so every copy and launch runs
 * in the order issued. One thread drives it at a time: callers wrap each sequence of operations in
 * {@link #hold()}, which also makes the context current on the calling thread. Host transfers go
 * through a pinned staging buffer (full PCIe speed, any source: a mapped checkpoint, a Java array).
 */
public final class CudaDevice implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CudaDevice.class);
    /** Pinned staging buffer: large enough to keep the copy engine busy, small enough to be cheap. */
    private static final long STAGING_BYTES = 32L << 20;

    private final int ordinal;
    private final CUctx_st context = new CUctx_st();
    private final String name;
    private final int multiprocessors;
    private final int computeMajor;
    private final int computeMinor;
    private final long totalMemory;
    private final ReentrantLock lock = new ReentrantLock();
    private final Pointer staging = new Pointer();
    private final MemorySegment stagingView;
    private CudaKernels kernels;
    private boolean closed;

    private CudaDevice(int ordinal) {
        Cuda.requireAvailable();
        this.ordinal = ordinal;
        int[] dev = new int[1];
        check(cuDeviceGet(dev, ordinal), "cuDeviceGet(" + ordinal + ")");
        check(cuDevicePrimaryCtxRetain(context, dev[0]), "cuDevicePrimaryCtxRetain");
        check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
        byte[] raw = new byte[256];
        check(cuDeviceGetName(raw, raw.length, dev[0]), "cuDeviceGetName");
        int len = 0;
        while (len < raw.length && raw[len] != 0) {
            len++;
        }
        this.name = new String(raw, 0, len, java.nio.charset.StandardCharsets.UTF_8);
        this.multiprocessors = attribute(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT, dev[0]);
        this.computeMajor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev[0]);
        this.computeMinor = attribute(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev[0]);
        try (SizeTPointer bytes = new SizeTPointer(1)) {
            check(cuDeviceTotalMem(bytes, dev[0]), "cuDeviceTotalMem");
            this.totalMemory = bytes.get();
        }
        check(cuMemAllocHost(staging, STAGING_BYTES), "cuMemAllocHost(" + STAGING_BYTES + ")");
        this.stagingView = MemorySegment.ofAddress(staging.address()).reinterpret(STAGING_BYTES);
        log.info("CUDA device {}: {} (sm_{}{}, {} SMs, {} MiB)", ordinal, name, computeMajor, computeMinor,
                multiprocessors, totalMemory >> 20);
    }

    /** Opens GPU {@code ordinal} (0-based, as the driver numbers them). */
    public static CudaDevice open(int ordinal) {
        return new CudaDevice(ordinal);
    }

    private static int attribute(int attr, int dev) {
        int[] v = new int[1];
        check(cuDeviceGetAttribute(v, attr, dev), "cuDeviceGetAttribute(" + attr + ")");
        return v[0];
    }

    /** Exclusive use of the device by this thread until closed, its context current. Reentrant. */
    public Held hold() {
        lock.lock();
        try {
            if (closed) {
                throw new CudaException("CUDA device " + ordinal + " is closed");
            }
            if (lock.getHoldCount() == 1) { // held already: the context is current on this thread
                check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
            }
        } catch (RuntimeException e) {
            lock.unlock();
            throw e;
        }
        return lock::unlock;
    }

    /** A held device; closing releases it. */
    @FunctionalInterface
    public interface Held extends AutoCloseable {
        @Override
        void close();
    }

    /** The kernels, compiled for this device on first use (NVRTC, a second or so). */
    public CudaKernels kernels() {
        try (Held h = hold()) {
            if (kernels == null) {
                kernels = CudaKernels.compile(this);
            }
            return kernels;
        }
    }

    /** Device memory of {@code bytes} (uninitialised); free it with {@link #free}. */
    public long alloc(long bytes) {
        try (Held h = hold()) {
            long[] ptr = new long[1];
            check(cuMemAlloc(ptr, Math.max(bytes, 1)), "cuMemAlloc(" + bytes + " bytes) on " + name);
            return ptr[0];
        }
    }

    public void free(long address) {
        if (address != 0) {
            try (Held h = hold()) {
                check(cuMemFree(address), "cuMemFree");
            }
        }
    }

    /** Copies all of {@code src} (any segment: mapped, native or heap) to device memory at {@code dst}. */
    public void upload(MemorySegment src, long dst) {
        try (Held h = hold()) {
            long n = src.byteSize();
            for (long off = 0; off < n; off += STAGING_BYTES) {
                long len = Math.min(STAGING_BYTES, n - off);
                MemorySegment.copy(src, off, stagingView, 0, len);
                check(cuMemcpyHtoD(dst + off, staging, len), "cuMemcpyHtoD");
            }
        }
    }

    /** Copies src[off .. off+n) to device floats at {@code dst}. */
    public void upload(float[] src, int off, int n, long dst) {
        try (Held h = hold()) {
            long chunk = STAGING_BYTES / Float.BYTES;
            for (long i = 0; i < n; i += chunk) {
                int len = (int) Math.min(chunk, n - i);
                MemorySegment.copy(src, off + (int) i, stagingView, ValueLayout.JAVA_FLOAT, 0, len);
                check(cuMemcpyHtoD(dst + i * Float.BYTES, staging, (long) len * Float.BYTES), "cuMemcpyHtoD");
            }
        }
    }

    /** Copies n device floats at {@code src} to dst[off .. off+n); waits for the work before it. */
    public void download(long src, float[] dst, int off, int n) {
        try (Held h = hold()) {
            long chunk = STAGING_BYTES / Float.BYTES;
            for (long i = 0; i < n; i += chunk) {
                int len = (int) Math.min(chunk, n - i);
                check(cuMemcpyDtoH(staging, src + i * Float.BYTES, (long) len * Float.BYTES),
                        "cuMemcpyDtoH (reports errors of kernels launched before it)");
                MemorySegment.copy(stagingView, ValueLayout.JAVA_FLOAT, 0, dst, off + (int) i, len);
            }
        }
    }

    /** Copies dst.byteSize() device bytes at {@code src} into {@code dst} (any segment, a heap array's too). */
    public void download(long src, MemorySegment dst) {
        try (Held h = hold()) {
            long n = dst.byteSize();
            for (long off = 0; off < n; off += STAGING_BYTES) {
                long len = Math.min(STAGING_BYTES, n - off);
                check(cuMemcpyDtoH(staging, src + off, len), "cuMemcpyDtoH (reports errors of kernels launched before it)");
                MemorySegment.copy(stagingView, 0, dst, off, len);
            }
        }
    }

    /** Copies {@code bytes} device bytes to a new heap array (small reads: a matrix row, tests). */
    public byte[] downloadBytes(long src, int bytes) {
        try (Held h = hold()) {
            byte[] out = new byte[bytes];
            for (int off = 0; off < bytes; off += (int) STAGING_BYTES) {
                int len = (int) Math.min(STAGING_BYTES, bytes - off);
                check(cuMemcpyDtoH(staging, src + off, len), "cuMemcpyDtoH");
                MemorySegment.copy(stagingView, ValueLayout.JAVA_BYTE, 0, out, off, len);
            }
            return out;
        }
    }

    public void copy(long src, long dst, long bytes) {
        try (Held h = hold()) {
            check(cuMemcpyDtoD(dst, src, bytes), "cuMemcpyDtoD");
        }
    }

    /** Waits for all work issued so far; reports errors of kernels launched before it. */
    public void synchronize() {
        try (Held h = hold()) {
            check(cuCtxSynchronize(), "cuCtxSynchronize (reports errors of kernels launched before it)");
        }
    }

    /** Milliseconds of device time {@code work} takes, between two events on the default stream. */
    public float time(Runnable work) {
        try (Held h = hold()) {
            CUevent_st start = new CUevent_st();
            CUevent_st stop = new CUevent_st();
            check(cuEventCreate(start, CU_EVENT_DEFAULT), "cuEventCreate");
            check(cuEventCreate(stop, CU_EVENT_DEFAULT), "cuEventCreate");
            try {
                check(cuEventRecord(start, (CUstream_st) null), "cuEventRecord");
                work.run();
                check(cuEventRecord(stop, (CUstream_st) null), "cuEventRecord");
                check(cuEventSynchronize(stop), "cuEventSynchronize");
                float[] ms = new float[1];
                check(cuEventElapsedTime(ms, start, stop), "cuEventElapsedTime");
                return ms[0];
            } finally {
                cuEventDestroy(start);
                cuEventDestroy(stop);
            }
        }
    }

    /**
     * Device-memory bandwidth as a device-to-device copy of {@code bytes} moves it, counting bytes
     * read and written (GB/s, median of five): the ceiling memory-bound kernels are held against.
     */
    public double copyBandwidth(long bytes) {
        try (Held h = hold()) {
            long src = alloc(bytes);
            long dst = alloc(bytes);
            try {
                kernels().launch("fill_f32", kernels().strideBlocks(bytes / 4, 256), 1, 256, src, bytes / 4, 1f);
                copy(src, dst, bytes); // warm-up
                float[] ms = new float[5];
                for (int i = 0; i < ms.length; i++) {
                    ms[i] = time(() -> copy(src, dst, bytes));
                }
                java.util.Arrays.sort(ms);
                return 2.0 * bytes / (ms[ms.length / 2] * 1e-3) / 1e9;
            } finally {
                free(src);
                free(dst);
            }
        }
    }

    public int ordinal() {
        return ordinal;
    }

    public String name() {
        return name;
    }

    public int multiprocessors() {
        return multiprocessors;
    }

    /** Compute capability as major * 10 + minor (90 for Hopper). */
    public int computeCapability() {
        return computeMajor * 10 + computeMinor;
    }

    public long totalMemory() {
        return totalMemory;
    }

    @Override
    public String toString() {
        return "cuda:" + ordinal + " (" + name + ")";
    }

    @Override
    public void close() {
        lock.lock();
        try {
            if (closed) {
                return;
            }
            check(cuCtxSetCurrent(context), "cuCtxSetCurrent");
            if (kernels != null) {
                kernels.close();
            }
            cuMemFreeHost(staging);
            closed = true;
            int[] dev = new int[1];
            if (cuDeviceGet(dev, ordinal) == 0) {
                cuDevicePrimaryCtxRelease(dev[0]);
            }
        } finally {
            lock.unlock();
        }
    }
}
