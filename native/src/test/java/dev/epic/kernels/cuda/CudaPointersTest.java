package dev.epic.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

/**
 * The JavaCPP pointers handed to cuBLAS carry the address they were made for. Runs without a GPU:
 * a field of JavaCPP's Pointer once shadowed the address and every cuBLAS operand became null (seen
 * on the H200 as a crash inside libcublas; see scripts/device/RESULTS.md, run 6).
 */
class CudaPointersTest {
    @Test
    void floatsAtKeepsTheAddress() {
        for (long at : new long[] {0x7f00_1234_5600L, 0x1000L, Long.MAX_VALUE & ~0xfL}) {
            assertEquals(at, CudaKernels.floatsAt(at).address());
            assertEquals(0, CudaKernels.floatsAt(at).position());
        }
    }
}
