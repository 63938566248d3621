package dev.epic.coordinator.scheduler;

import dev.epic.model.moe.RoutedExperts;
import java.util.concurrent.atomic.AtomicReference;

/** Routed experts in this process, with an Error injected into their next call: a fault in the middle of a step. */
public final class FailingExperts implements RoutedExperts {
    private final RoutedExperts experts;
    private final AtomicReference<Error> next = new AtomicReference<>();

    public FailingExperts(RoutedExperts experts) {
        this.experts = experts;
    }

    /** The next call throws {@code error}; the calls after it compute again. */
    public void failNext(Error error) {
        next.set(error);
    }

    @Override
    public void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out) {
        Error e = next.getAndSet(null);
        if (e != null) {
            throw e;
        }
        experts.forward(layer, x, rows, expertIds, weights, k, out);
    }
}
