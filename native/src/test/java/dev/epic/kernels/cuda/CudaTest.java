package dev.epic.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
