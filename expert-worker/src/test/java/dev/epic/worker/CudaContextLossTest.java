package dev.epic.worker;

import static org.bytedeco.cuda.global.cudart.CUDA_ERROR_ILLEGAL_ADDRESS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.WeightLayout;
import dev.epic.kernels.cuda.CudaDevice;
import dev.epic.kernels.cuda.CudaException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.condition.EnabledIf;
import org.junit.jupiter.api.condition.EnabledIfSystemProperty;

/**
 * A GPU whose context is lost (here: a kernel writes to an address that is not the process's) makes
 * the shard call its context-lost action, which ends an expert worker. It poisons the process's
 * context for good, so it runs only when asked for, in a JVM of its own
 * ({@code -Depic.cuda.loseContext=true}: scripts/device/cuda-check.sh).
 */
@EnabledIf("dev.epic.kernels.cuda.Cuda#available")
@EnabledIfSystemProperty(named = "epic.cuda.loseContext", matches = "true")
class CudaContextLossTest {
    @Test
    void anIllegalAddressLosesTheContextAndTheShardSaysSo() {
        CudaDevice device = CudaDevice.open(0);
        int hidden = 256;
        CudaShard shard = CudaShard.random(device, WeightLayout.Format.BF16, hidden, 128, 4, 1, new int[] {0, 1, 2, 3});
        AtomicInteger lost = new AtomicInteger();
        shard.onContextLost(lost::incrementAndGet);
        float[] x = new float[hidden];
        x[0] = 1;
        double[] out = new double[hidden];
        // a message that works, before
        assertTrue(shard.forwardCombined(0, x, 1, 1, new int[] {0}, new float[] {1f}, new int[] {2},
                new int[] {0, 1}, 1, out));
        assertEquals(0, lost.get());

        device.kernels().launch("fill_f32", 1, 1, 32, 16L, 1L << 20, 0f);
        CudaException e = assertThrows(CudaException.class, device::synchronize);
        assertEquals(CUDA_ERROR_ILLEGAL_ADDRESS, e.driverError(), e.getMessage());
        assertTrue(e.contextLost());

        CudaException after = assertThrows(CudaException.class, () -> shard.forwardCombined(0, x, 1, 1,
                new int[] {0}, new float[] {1f}, new int[] {2}, new int[] {0, 1}, 1, out));
        assertTrue(after.contextLost(), after.getMessage());
        assertEquals(1, lost.get(), "the worker's exit action ran once");
    }
}
