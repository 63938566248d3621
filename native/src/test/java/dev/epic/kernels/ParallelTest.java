package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;

class ParallelTest {
    @Test
    void coversEveryIndexOnceWithAlignedChunks() {
        for (int n : new int[] {1, 2, 5, 16, 17, 100, 1023, 129280}) {
            for (int align : new int[] {1, 4, 16}) {
                AtomicIntegerArray hits = new AtomicIntegerArray(n);
                Parallel.forRange(n, align, Long.MAX_VALUE, (a, b) -> {
                    assertTrue(a % align == 0 && a < b && b <= n, "chunk [" + a + ", " + b + ")");
                    for (int i = a; i < b; i++) {
                        hits.incrementAndGet(i);
                    }
                });
                for (int i = 0; i < n; i++) {
                    assertEquals(1, hits.get(i), "n=" + n + " align=" + align + " index " + i);
                }
            }
        }
    }

    @Test
    void propagatesFailuresAndStaysUsable() {
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> Parallel.forRange(1000, 1, Long.MAX_VALUE, (a, b) -> {
                    if (a <= 500 && 500 < b) {
                        throw new IllegalStateException("boom");
                    }
                }));
        assertEquals("boom", e.getMessage());
        AtomicIntegerArray hits = new AtomicIntegerArray(1000);
        Parallel.forRange(1000, 1, Long.MAX_VALUE, (a, b) -> hits.addAndGet(0, b - a));
        assertEquals(1000, hits.get(0));
    }

    @Test
    void nestedAndConcurrentCallersAllComplete() throws Exception {
        ExecutorService pool = Executors.newFixedThreadPool(4);
        try {
            List<Future<Integer>> results = new ArrayList<>();
            for (int t = 0; t < 8; t++) {
                results.add(pool.submit(() -> {
                    AtomicIntegerArray sum = new AtomicIntegerArray(1);
                    for (int rep = 0; rep < 200; rep++) {
                        Parallel.forRange(64, 1, Long.MAX_VALUE, (a, b) -> Parallel.forRange(b - a, 1, Long.MAX_VALUE,
                                (c, d) -> sum.addAndGet(0, d - c)));
                    }
                    return sum.get(0);
                }));
            }
            for (Future<Integer> f : results) {
                assertEquals(64 * 200, f.get());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void bandwidthProbeReturnsAPositiveRate() {
        double gbs = Bandwidth.measureGBs(16L << 20, 1);
        assertTrue(gbs > 0 && Double.isFinite(gbs), "bandwidth " + gbs);
    }

    @Test
    void fmaProbeReturnsAPositiveRate() {
        double gflops = FmaPeak.measureGFlops(1);
        assertTrue(gflops > 0 && Double.isFinite(gflops), "FMA peak " + gflops);
    }
}
