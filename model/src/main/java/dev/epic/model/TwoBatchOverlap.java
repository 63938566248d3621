package dev.epic.model;

import dev.epic.model.layers.DecoderLayer;
import dev.epic.model.layers.SequenceRows;
import java.util.ArrayList;
import java.util.List;

/**
 * Two-batch overlap, as in DeepSeek's inference system and SGLang's {@code --enable-two-batch-overlap}:
 * a step's sequences are split into two micro-batches, A and B, and each one's attention runs while the
 * other's routed experts compute elsewhere, so the coordinator's work hides the workers' and the
 * network's. Per layer l:
 * <pre>
 *   A: FFN(l)    alongside  B: attention(l)
 *   B: FFN(l)    alongside  A: attention(l+1)
 * </pre>
 * Every kernel computes a row independently of the others in its batch, so the residual streams are
 * the same bits as one batch's.
 */
final class TwoBatchOverlap {
    private TwoBatchOverlap() {}

    /**
     * Where to split {@code sequences}: the index of B's first sequence, balancing the two micro-batches'
     * rows; 0 when there are fewer than two sequences (no split).
     */
    static int split(List<SequenceRows> sequences) {
        if (sequences.size() < 2) {
            return 0;
        }
        SequenceRows last = sequences.getLast();
        int rows = last.firstRow() + last.length();
        int best = 1;
        for (int i = 2; i < sequences.size(); i++) {
            if (Math.abs(2 * sequences.get(i).firstRow() - rows) < Math.abs(2 * sequences.get(best).firstRow() - rows)) {
                best = i;
            }
        }
        return best;
    }

    /** Runs every layer over h[rows x hidden] (updated in place), with B starting at sequence {@code split}. */
    static void run(List<DecoderLayer> layers, float[] h, int hidden, List<SequenceRows> sequences, int split) {
        int rowsA = sequences.get(split).firstRow();
        int rows = h.length / hidden;
        int rowsB = rows - rowsA;
        List<SequenceRows> a = sequences.subList(0, split);
        List<SequenceRows> b = new ArrayList<>(sequences.size() - split);
        for (SequenceRows s : sequences.subList(split, sequences.size())) {
            b.add(new SequenceRows(s.cache(), s.start(), s.firstRow() - rowsA, s.length()));
        }
        float[] hA = java.util.Arrays.copyOfRange(h, 0, rowsA * hidden);
        float[] hB = java.util.Arrays.copyOfRange(h, rowsA * hidden, h.length);
        Deferred deferred = new Deferred();
        layers.getFirst().attend(hA, rowsA, a);
        for (int l = 0; l < layers.size(); l++) {
            DecoderLayer layer = layers.get(l);
            layer.feedForward(hA, rowsA, deferred.of(() -> layer.attend(hB, rowsB, b)));
            deferred.rethrow();
            DecoderLayer next = l + 1 < layers.size() ? layers.get(l + 1) : null;
            layer.feedForward(hB, rowsB, next == null ? null : deferred.of(() -> next.attend(hA, rowsA, a)));
            deferred.rethrow();
        }
        System.arraycopy(hA, 0, h, 0, hA.length);
        System.arraycopy(hB, 0, h, hA.length, hB.length);
    }

    /**
     * Work run alongside an experts call fails after that call, not inside it: the call then waits for
     * its answers as usual, and the step fails with the alongside work's exception.
     */
    private static final class Deferred {
        private Throwable failure;

        Runnable of(Runnable work) {
            return () -> {
                try {
                    work.run();
                } catch (RuntimeException | Error e) {
                    failure = e;
                }
            };
        }

        void rethrow() {
            Throwable f = failure;
            failure = null;
            if (f instanceof RuntimeException r) {
                throw r;
            }
            if (f instanceof Error e) {
                throw e;
            }
        }
    }
}
