package dev.epic.kernels.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_SUCCESS;
import static org.bytedeco.cuda.global.cudart.cuDeviceGetCount;
import static org.bytedeco.cuda.global.cudart.cuGetErrorName;
import static org.bytedeco.cuda.global.cudart.cuGetErrorString;
import static org.bytedeco.cuda.global.cudart.cuInit;

import org.bytedeco.javacpp.BytePointer;
import org.bytedeco.javacpp.Loader;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Whether this process can use CUDA, found once: JavaCPP's bindings load only where the CUDA 13
 * libraries are installed (libcuda from the driver, libcudart / libnvrtc / libcublas from the
 * toolkit) and the driver sees a GPU. Elsewhere {@link #available()} is false with a reason, and the
 * CPU kernels serve.
 */
public final class Cuda {
    private static final Logger log = LoggerFactory.getLogger(Cuda.class);
    private static final String UNAVAILABLE = probe();

    private Cuda() {}

    private static String probe() {
        try {
            Loader.load(org.bytedeco.cuda.global.cudart.class);
            int rc = cuInit(0);
            if (rc != CUDA_SUCCESS) {
                return "cuInit failed: " + errorName(rc);
            }
            int[] count = new int[1];
            rc = cuDeviceGetCount(count);
            if (rc != CUDA_SUCCESS) {
                return "cuDeviceGetCount failed: " + errorName(rc);
            }
            return count[0] > 0 ? null : "the CUDA driver sees no GPU";
        } catch (Throwable e) { // UnsatisfiedLinkError, NoClassDefFoundError: no CUDA libraries here
            log.debug("CUDA bindings did not load", e);
            return "the CUDA 13 libraries did not load (" + e + ")";
        }
    }

    /** True when a GPU can be used through the driver. */
    public static boolean available() {
        return UNAVAILABLE == null;
    }

    /** Why {@link #available()} is false (null when it is true). */
    public static String unavailableReason() {
        return UNAVAILABLE;
    }

    /** Number of GPUs the driver sees (0 when CUDA is unavailable). */
    public static int deviceCount() {
        if (!available()) {
            return 0;
        }
        int[] count = new int[1];
        check(cuDeviceGetCount(count), "cuDeviceGetCount");
        return count[0];
    }

    /** Throws {@link CudaException} naming {@code call} and the driver's error unless rc is CUDA_SUCCESS. */
    static void check(int rc, String call) {
        if (rc != CUDA_SUCCESS) {
            throw new CudaException(call + " failed: " + errorName(rc), rc);
        }
    }

    static void requireAvailable() {
        require(UNAVAILABLE);
    }

    /** Throws the error every CUDA entry point gives when {@code unavailableReason} is not null. */
    static void require(String unavailableReason) {
        if (unavailableReason != null) {
            throw new CudaException("CUDA is not available in this process: " + unavailableReason);
        }
    }

    static String errorName(int rc) {
        try {
            BytePointer name = new BytePointer();
            BytePointer text = new BytePointer();
            if (cuGetErrorName(rc, name) == CUDA_SUCCESS && cuGetErrorString(rc, text) == CUDA_SUCCESS) {
                return name.getString() + " (" + text.getString() + ")";
            }
        } catch (Throwable ignored) {
            // fall through to the number
        }
        return "CUDA error " + rc;
    }
}
