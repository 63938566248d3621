package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.LE;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Memory read bandwidth probe: all kernel threads sum a large off-heap buffer with vector loads,
 * four sequential streams per thread (the access pattern of a batch-1 GEMV). The roofline for decode is bytes of weights / this number.
 */
public final class Bandwidth {
    private static volatile float sink;

    private Bandwidth() {}

    /** Best-of-10 read bandwidth in GB/s (1e9 bytes/s) over a 256 MiB buffer; takes a few hundred ms. */
    public static double measureGBs() {
        return measureGBs(256L << 20, 10);
    }

    /** Read bandwidth over a buffer of {@code bytes} (well above the last-level cache), best of {@code passes}. */
    public static double measureGBs(long bytes, int passes) {
        int stripe = 1 << 16;
        long size = Math.ceilDiv(bytes, stripe) * stripe;
        int stripes = (int) (size / stripe);
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buf = arena.allocate(size, 64);
            buf.fill((byte) 1); // touch every page so the timed passes read memory, not zero pages
            float[] partial = new float[stripes];
            double best = 0;
            for (int p = 0; p < passes; p++) {
                long t0 = System.nanoTime();
                Parallel.forRange(stripes, 1, Long.MAX_VALUE, (s0, s1) -> {
                    partial[s0] = sum(buf, (long) s0 * stripe, (long) (s1 - s0) * stripe);
                });
                long t1 = System.nanoTime();
                best = Math.max(best, size / (double) (t1 - t0));
            }
            float total = 0;
            for (float v : partial) {
                total += v;
            }
            sink = total;
            return best;
        }
    }

    /**
     * Sums [off, off + len) as four sequential streams, one per quarter (len is a multiple of 4
     * vectors): the access pattern of the GEMV, which reads four far-apart rows at a time. One
     * stream per thread leaves bandwidth unused on this class of machine (measured 30 against 50 GB/s).
     */
    private static float sum(MemorySegment seg, long off, long len) {
        long step = F.length() * 4L;
        long q = len / 4;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (long o = off, end = off + q; o < end; o += step) {
            a0 = a0.add(FloatVector.fromMemorySegment(F, seg, o, LE));
            a1 = a1.add(FloatVector.fromMemorySegment(F, seg, o + q, LE));
            a2 = a2.add(FloatVector.fromMemorySegment(F, seg, o + 2 * q, LE));
            a3 = a3.add(FloatVector.fromMemorySegment(F, seg, o + 3 * q, LE));
        }
        return a0.add(a1).add(a2.add(a3)).reduceLanes(VectorOperators.ADD);
    }
}
