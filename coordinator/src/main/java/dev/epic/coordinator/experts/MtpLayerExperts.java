package dev.epic.coordinator.experts;

import dev.epic.model.moe.RoutedExperts;
import java.util.function.Supplier;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The MTP layer's routed experts for a coordinator with expert workers: on the workers that announce
 * the layer ({@code epic expert-worker --mtp-layer}) while they cover every expert, else in this process,
 * on a copy made the first time it is needed. A call the workers fail (none left for an expert) is run
 * here too, so drafting never ends a sequence for want of a worker. On the exact wire both compute the
 * same numbers, so where the layer runs changes the drafts' cost, never the drafts.
 */
final class MtpLayerExperts implements RoutedExperts {
    private static final Logger log = LoggerFactory.getLogger(MtpLayerExperts.class);

    private final RemoteExperts workers;
    private final int layer;
    private final Supplier<RoutedExperts> own;
    private RoutedExperts local; // made once needed
    /** Where the last call ran (null: none yet), so that only a change is logged. */
    private Boolean onWorkers;

    MtpLayerExperts(RemoteExperts workers, int layer, Supplier<RoutedExperts> own) {
        this.workers = workers;
        this.layer = layer;
        this.own = own;
    }

    @Override
    public void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k, float[] out) {
        forward(layer, x, rows, expertIds, weights, k, out, () -> {});
    }

    @Override
    public synchronized void forward(int layer, float[] x, int rows, int[] expertIds, float[] weights, int k,
            float[] out, Runnable alongside) {
        if (layer != this.layer) {
            throw new IllegalArgumentException("these are layer " + this.layer + "'s experts, not layer " + layer + "'s");
        }
        Once once = new Once(alongside);
        if (workers.coversMtpLayer()) {
            try {
                workers.forwardMtpLayer(layer, x, rows, expertIds, weights, k, out, once);
                ran(true, "the expert workers announcing it cover every expert");
                return;
            } catch (ExpertsUnavailableException e) {
                ran(false, e.getMessage());
            }
        } else {
            ran(false, "no expert workers announcing it (epic expert-worker --mtp-layer) cover every expert");
        }
        if (local == null) {
            local = own.get();
        }
        local.forward(layer, x, rows, expertIds, weights, k, out, once);
    }

    /** Whether it ran on the workers last (false: here; null: not yet called). */
    synchronized Boolean onWorkers() {
        return onWorkers;
    }

    private void ran(boolean there, String why) {
        if (onWorkers == null || onWorkers != there) {
            if (there) {
                log.info("MTP layer {}'s routed experts run on expert workers: {}", layer, why);
            } else {
                log.warn("MTP layer {}'s routed experts run in this process: {}", layer, why);
            }
        }
        onWorkers = there;
    }

    /** The caller's own work, run once though a call the workers failed is run again here. */
    private static final class Once implements Runnable {
        private Runnable work;

        Once(Runnable work) {
            this.work = work;
        }

        @Override
        public void run() {
            Runnable w = work;
            work = null;
            if (w != null) {
                w.run();
            }
        }
    }
}
