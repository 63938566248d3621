package dev.epic.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.DisabledIf;

/** Where no GPU is (CI), asking for one is a clear error, never a crash of the JVM. */
@DisabledIf("dev.epic.kernels.cuda.CudaMatrixTest#gpu")
class CudaUnavailableTest {
    @Test
    void openingADeviceSaysWhyCudaIsUnavailable() {
        assertEquals(0, Cuda.deviceCount());
        assertNotNull(Cuda.unavailableReason());
        CudaException e = assertThrows(CudaException.class, () -> CudaDevice.open(0));
        assertTrue(e.getMessage().startsWith("CUDA is not available in this process: "), e.getMessage());
        assertTrue(e.getMessage().contains(Cuda.unavailableReason()), e.getMessage());
    }
}
