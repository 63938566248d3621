package dev.epic.kernels.cuda;

import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_ECC_UNCORRECTABLE;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_ILLEGAL_ADDRESS;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_INVALID_DEVICE;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_LAUNCH_FAILED;
import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_OUT_OF_MEMORY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;

/**
 * What holds on every machine, with a GPU or without one (CI): availability is consistent, asking for
 * a device that is not there is a clear CudaException (never a JVM crash), and the pointers handed to
 * cuBLAS carry their address.
 */
class CudaTest {
    @Test
    void availabilityIsConsistent() {
        assertEquals(Cuda.available(), Cuda.unavailableReason() == null);
        assertEquals(Cuda.available(), Cuda.deviceCount() > 0);
    }

    @Test
    void anUnavailableCudaNamesItsReason() {
        CudaException e = assertThrows(CudaException.class, () -> Cuda.require("the driver sees no GPU"));
        assertEquals("CUDA is not available in this process: the driver sees no GPU", e.getMessage());
        Cuda.require(null); // available: no error
    }

    @Test
    void openingADeviceThatIsNotThereIsAClearError() {
        CudaException e = assertThrows(CudaException.class, () -> CudaDevice.open(Cuda.deviceCount() + 100));
        String expected = Cuda.available() ? "cuDeviceGet(" + (Cuda.deviceCount() + 100) + ") failed"
                : "CUDA is not available in this process: " + Cuda.unavailableReason();
        assertTrue(e.getMessage().startsWith(expected), e.getMessage());
        assertEquals(Cuda.available() ? CUDA_ERROR_INVALID_DEVICE : 0, e.driverError());
        assertFalse(e.contextLost());
    }

    /** The worker exits on the driver's sticky errors only, and context added to one keeps its code. */
    @Test
    void stickyDriverErrorsMeanTheContextIsLost() {
        assertTrue(new CudaException("cuCtxSynchronize failed", CUDA_ERROR_ILLEGAL_ADDRESS).contextLost());
        assertTrue(new CudaException("cuMemcpyDtoH failed", CUDA_ERROR_LAUNCH_FAILED).contextLost());
        assertFalse(new CudaException("cuMemAlloc failed", CUDA_ERROR_OUT_OF_MEMORY).contextLost());
        assertFalse(new CudaException("cublasSgemm failed: status 13 (CUDA_ERROR_ILLEGAL_ADDRESS)").contextLost(),
                "a library's status, not the driver's code");
        CudaException wrapped = new CudaException("copying expert 3 of layer 1",
                new CudaException("cuMemcpyHtoD failed", CUDA_ERROR_ECC_UNCORRECTABLE));
        assertEquals(CUDA_ERROR_ECC_UNCORRECTABLE, wrapped.driverError());
        assertTrue(wrapped.contextLost());
    }

    /**
     * A field of JavaCPP's Pointer once shadowed the wrapped address and every cuBLAS operand became
     * null (a crash inside libcublas on the H200; scripts/device/RESULTS.md, run 6).
     */
    @Test
    void floatsAtKeepsTheAddress() {
        for (long at : new long[] {0x7f00_1234_5600L, 0x1000L, Long.MAX_VALUE & ~0xfL}) {
            assertEquals(at, CudaKernels.floatsAt(at).address());
            assertEquals(0, CudaKernels.floatsAt(at).position());
        }
    }
}
