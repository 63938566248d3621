package dev.epic.kernels.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_ECC_UNCORRECTABLE;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_HARDWARE_STACK_ERROR;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_ILLEGAL_ADDRESS;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_ILLEGAL_INSTRUCTION;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_INVALID_PC;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_LAUNCH_FAILED;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_LAUNCH_TIMEOUT;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_MISALIGNED_ADDRESS;

/**
 * A CUDA driver, NVRTC or cuBLAS call that failed, with the call and the library's own error name,
 * and the driver's result code where the driver gave one (0 otherwise).
 */
public final class CudaException extends RuntimeException {
    private final int driverError;

    public CudaException(String message) {
        this(message, 0);
    }

    /** A failed driver call: {@code driverError} is its CUresult. */
    public CudaException(String message, int driverError) {
        super(message);
        this.driverError = driverError;
    }

    /** Context added to {@code cause}; a CudaException cause keeps its driver code. */
    public CudaException(String message, Throwable cause) {
        super(message, cause);
        this.driverError = cause instanceof CudaException c ? c.driverError : 0;
    }

    /** The driver's CUresult, or 0 when the failure was not a driver call's. */
    public int driverError() {
        return driverError;
    }

    /**
     * Whether the context is unusable after this error: CUDA's "sticky" errors (an illegal address, a
     * failed launch, a hardware fault), after which every later call in the process fails too.
     */
    public boolean contextLost() {
        return switch (driverError) {
            case CUDA_ERROR_ILLEGAL_ADDRESS, CUDA_ERROR_LAUNCH_FAILED, CUDA_ERROR_ILLEGAL_INSTRUCTION,
                    CUDA_ERROR_MISALIGNED_ADDRESS, CUDA_ERROR_HARDWARE_STACK_ERROR, CUDA_ERROR_ECC_UNCORRECTABLE,
                    CUDA_ERROR_INVALID_PC, CUDA_ERROR_LAUNCH_TIMEOUT -> true;
            default -> false;
        };
    }
}
