package dev.epic.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The on-disk cache of compiled kernels (no GPU needed: it stores bytes). */
class KernelCacheTest {
    @Test
    void keysDependOnSourceArchitectureAndCompiler() {
        String k = KernelCache.key("src", "--gpu-architecture=sm_90", "NVRTC 13.0");
        assertEquals(k, KernelCache.key("src", "--gpu-architecture=sm_90", "NVRTC 13.0"));
        assertNotEquals(k, KernelCache.key("src2", "--gpu-architecture=sm_90", "NVRTC 13.0"));
        assertNotEquals(k, KernelCache.key("src", "--gpu-architecture=sm_100", "NVRTC 13.0"));
        assertNotEquals(k, KernelCache.key("src", "--gpu-architecture=sm_90", "NVRTC 13.1"));
        assertNotEquals(KernelCache.key("ab", "c", "d"), KernelCache.key("a", "bc", "d"));
    }

    @Test
    void storesReadsAndForgetsImages(@TempDir Path dir) throws Exception {
        KernelCache cache = new KernelCache(dir.resolve("nested/cuda"));
        assertNull(cache.get("k"));
        byte[] image = {1, 2, 3, 4, 5};
        cache.put("k", image);
        assertArrayEquals(image, cache.get("k"));
        cache.put("k", new byte[] {9});
        assertArrayEquals(new byte[] {9}, cache.get("k"));
        try (var files = Files.list(dir.resolve("nested/cuda"))) {
            assertEquals(1, files.count(), "no temporary files left behind");
        }
        cache.remove("k");
        assertNull(cache.get("k"));
    }

    @Test
    void anUnwritableDirectoryIsNoError(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("not-a-dir");
        Files.writeString(file, "x");
        KernelCache cache = new KernelCache(file);
        cache.put("k", new byte[] {1});
        assertNull(cache.get("k"));
    }
}
