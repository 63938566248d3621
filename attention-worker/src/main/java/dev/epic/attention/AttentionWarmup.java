package dev.epic.attention;

import dev.epic.model.ForwardWarmup;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.layers.SequenceRows;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;

/**
 * An attention worker's kernels compiled before it registers, as an expert worker's are: cold, its
 * first long prefill chunk could miss the coordinator's attention deadline. It runs layer 0's MLA
 * (every layer runs the same kernels) over random rows in the serving shapes of
 * {@link ForwardWarmup#plan}, in caches of its own, {@code rounds} times: eight rounds make about the
 * MLA calls a coordinator's warm-up makes over eight layers.
 */
public final class AttentionWarmup {
    private AttentionWarmup() {}

    /** Runs the rounds; returns the MLA calls made. */
    public static int run(AttentionLayers layers, KvCacheDtype dtype, int budget, int rounds) {
        int hidden = layers.config().hiddenSize();
        List<List<ForwardWarmup.Part>> plan = ForwardWarmup.plan(layers.config().maxPositionEmbeddings(), budget);
        SplittableRandom random = new SplittableRandom(7);
        int calls = 0;
        for (int round = 0; round < rounds; round++) {
            List<KvCache> caches = new ArrayList<>();
            for (int i = 0; i < ForwardWarmup.SEQUENCES; i++) {
                caches.add(layers.newCache(dtype));
            }
            for (List<ForwardWarmup.Part> step : plan) {
                List<SequenceRows> sequences = new ArrayList<>(step.size());
                int rows = 0;
                for (ForwardWarmup.Part p : step) {
                    sequences.add(new SequenceRows(caches.get(p.sequence()), caches.get(p.sequence()).length(), rows,
                            p.length()));
                    rows += p.length();
                }
                float[] x = new float[rows * hidden];
                for (int i = 0; i < x.length; i++) {
                    x[i] = (float) random.nextGaussian(); // about what the input norm hands attention
                }
                layers.layer(0).forward(x, rows, sequences, new float[rows * hidden]);
                for (SequenceRows s : sequences) {
                    s.cache().setLength(s.start() + s.length());
                }
                calls++;
            }
        }
        return calls;
    }
}
