package dev.epic.coordinator.experts;

import java.util.function.BooleanSupplier;

/** Waits for an asynchronous condition (ZooKeeper watches) with a generous bound, then fails. */
final class Poll {
    private Poll() {}

    static void until(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + 20_000_000_000L;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out waiting for: " + what);
            }
            Thread.sleep(20);
        }
    }
}
