package dev.epic.kernels.cuda;

/** A CUDA driver, NVRTC or cuBLAS call that failed, with the call and the library's own error name. */
public final class CudaException extends RuntimeException {
    public CudaException(String message) {
        super(message);
    }

    public CudaException(String message, Throwable cause) {
        super(message, cause);
    }
}
