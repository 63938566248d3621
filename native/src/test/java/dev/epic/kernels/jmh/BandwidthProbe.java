package dev.epic.kernels.jmh;

import dev.epic.kernels.Bandwidth;
import dev.epic.kernels.Parallel;

/** Prints the memory read bandwidth the GEMV numbers should be compared with. */
public final class BandwidthProbe {
    private BandwidthProbe() {}

    public static void main(String[] args) {
        Bandwidth.measureGBs(64L << 20, 2); // warm up the JIT
        System.out.printf("read bandwidth, %d thread(s): %.1f GB/s%n", Parallel.threads(), Bandwidth.measureGBs());
    }
}
