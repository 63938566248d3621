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
 * the same bits as one batch's. With attention in this process a long chunk may be cut in two, so a
 * prompt prefilled alone overlaps too.
 */
final class TwoBatchOverlap {
    /** A chunk is cut in two only when each part has at least this many rows (a block of the prefix cache). */
    static final int MIN_CUT_ROWS = 16;

    private TwoBatchOverlap() {}

    /**
     * The two micro-batches: A's rows are the step's first {@code rowsA}, B's the rest, each list's rows
     * numbered from 0.
     */
    record Split(List<SequenceRows> a, List<SequenceRows> b, int rowsA) {}

    /**
     * Where to split {@code sequences}, balancing the micro-batches' rows; null when they cannot be split.
     * The cut goes at the middle row. A chunk across it is cut there when {@code cutChunks} and both parts
     * have {@link #MIN_CUT_ROWS} (B's part then attends to A's, written at each layer just before: as a
     * chunked prefill, the same bits under the chunk-invariant attention); else the cut goes to the nearest
     * sequence boundary.
     */
    static Split split(List<SequenceRows> sequences, boolean cutChunks) {
        SequenceRows last = sequences.getLast();
        int rows = last.firstRow() + last.length();
        int middle = rows / 2;
        for (int i = 0; i < sequences.size(); i++) {
            SequenceRows s = sequences.get(i);
            int into = middle - s.firstRow();
            if (cutChunks && into >= MIN_CUT_ROWS && s.length() - into >= MIN_CUT_ROWS) {
                List<SequenceRows> a = new ArrayList<>(sequences.subList(0, i));
                a.add(new SequenceRows(s.cache(), s.start(), s.firstRow(), into));
                List<SequenceRows> b = new ArrayList<>();
                b.add(new SequenceRows(s.cache(), s.start() + into, 0, s.length() - into));
                b.addAll(rebased(sequences.subList(i + 1, sequences.size()), middle));
                return new Split(a, b, middle);
            }
        }
        int best = 0; // the boundary before sequence best, nearest the middle
        for (int i = 1; i < sequences.size(); i++) {
            if (best == 0 || Math.abs(2 * sequences.get(i).firstRow() - rows)
                    < Math.abs(2 * sequences.get(best).firstRow() - rows)) {
                best = i;
            }
        }
        if (best == 0) {
            return null;
        }
        int rowsA = sequences.get(best).firstRow();
        return new Split(List.copyOf(sequences.subList(0, best)),
                rebased(sequences.subList(best, sequences.size()), rowsA), rowsA);
    }

    private static List<SequenceRows> rebased(List<SequenceRows> sequences, int rows) {
        List<SequenceRows> out = new ArrayList<>(sequences.size());
        for (SequenceRows s : sequences) {
            out.add(new SequenceRows(s.cache(), s.start(), s.firstRow() - rows, s.length()));
        }
        return out;
    }

    /** Runs every layer over h[rows x hidden] (updated in place) as the two micro-batches of {@code split}. */
    static void run(List<DecoderLayer> layers, float[] h, int hidden, Split split) {
        int rowsA = split.rowsA();
        int rowsB = h.length / hidden - rowsA;
        List<SequenceRows> a = split.a();
        List<SequenceRows> b = split.b();
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
