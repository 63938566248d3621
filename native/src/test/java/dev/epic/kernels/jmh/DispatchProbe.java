package dev.epic.kernels.jmh;

import dev.epic.kernels.Parallel;
import java.util.concurrent.ForkJoinPool;
import java.util.concurrent.ForkJoinTask;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Cost of handing a trivial 2-way loop to {@link Parallel} versus a ForkJoin submit/join, with an
 * idle gap (microseconds, first argument) before each call: {@code DispatchProbe 20}.
 */
public final class DispatchProbe {
    private static final AtomicLong SINK = new AtomicLong();

    private DispatchProbe() {}

    public static void main(String[] args) {
        int gapMicros = args.length > 0 ? Integer.parseInt(args[0]) : 0;
        int n = 3000;
        for (int rep = 0; rep < 2; rep++) { // the first round warms up
            long pool = 0, forkJoin = 0;
            for (int i = 0; i < n; i++) {
                idle(gapMicros);
                long t0 = System.nanoTime();
                Parallel.forRange(2, 1, Long.MAX_VALUE, (a, b) -> SINK.addAndGet(b - a));
                pool += System.nanoTime() - t0;
                idle(gapMicros);
                t0 = System.nanoTime();
                ForkJoinTask<?> task = ForkJoinPool.commonPool().submit(() -> SINK.incrementAndGet());
                SINK.incrementAndGet();
                task.join();
                forkJoin += System.nanoTime() - t0;
            }
            if (rep == 1) {
                System.out.printf("idle gap %d us: Parallel %.1f us/loop, ForkJoin %.1f us/loop (means of %d)%n",
                        gapMicros, pool / 1e3 / n, forkJoin / 1e3 / n, n);
            }
        }
    }

    private static void idle(int micros) {
        long end = System.nanoTime() + micros * 1000L;
        while (System.nanoTime() < end) {
            Thread.onSpinWait();
        }
    }
}
