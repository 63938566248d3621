package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

class LatentAttentionTest {
    private static float[] random(SplittableRandom rnd, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (rnd.nextDouble() * 2 - 1);
        }
        return a;
    }

    private static void assertBits(float[] want, float[] got, String what) {
        for (int i = 0; i < want.length; i++) {
            assertEquals(Float.floatToRawIntBits(want[i]), Float.floatToRawIntBits(got[i]),
                    what + " element " + i + ": " + want[i] + " vs " + got[i]);
        }
    }

    /** Register blocks, odd leftovers and any position split give the same bits; values match a double dot. */
    @ParameterizedTest
    @CsvSource({"8, 256, 32, 37", "16, 512, 64, 20", "11, 40, 8, 9", "3, 16, 16, 5", "9, 256, 32, 1"})
    void scoresAreExactWhateverTheSplit(int heads, int rank, int rope, int positions) {
        SplittableRandom rnd = new SplittableRandom(heads * 1000L + rank);
        int qkStride = rope + 7; // rope queries sit inside wider rows, as in q
        float[] lat = random(rnd, positions * rank), pe = random(rnd, positions * rope);
        float[] qLat = random(rnd, heads * rank), qPe = random(rnd, heads * qkStride + 3);
        float[] whole = new float[heads * positions];
        LatentAttention.scores(lat, 0, rank, pe, 0, rope, positions, qLat, 0, qPe, 3, qkStride, heads, whole, 0, positions);
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < positions; t++) {
                double want = 0;
                for (int c = 0; c < rank; c++) {
                    want += (double) lat[t * rank + c] * qLat[h * rank + c];
                }
                for (int c = 0; c < rope; c++) {
                    want += (double) pe[t * rope + c] * qPe[3 + h * qkStride + c];
                }
                assertEquals(want, whole[h * positions + t], 1e-5 * Math.sqrt(rank + rope), "score " + h + "," + t);
            }
        }
        // Odd split points put positions into single (not paired) paths.
        float[] parts = new float[heads * positions];
        for (int t0 = 0; t0 < positions; t0 += 3) {
            int n = Math.min(3, positions - t0);
            LatentAttention.scores(lat, t0 * rank, rank, pe, t0 * rope, rope, n, qLat, 0, qPe, 3, qkStride, heads, parts,
                    t0, positions);
        }
        assertBits(whole, parts, "split scores");
    }

    /** Contexts equal one axpy per head and position, in order, whatever the column range. */
    @ParameterizedTest
    @CsvSource({"8, 256, 37", "16, 512, 20", "11, 40, 9", "3, 16, 5"})
    void contextsEqualAxpysWhateverTheColumns(int heads, int rank, int positions) {
        SplittableRandom rnd = new SplittableRandom(heads * 7L + rank);
        float[] p = random(rnd, heads * positions), lat = random(rnd, positions * rank);
        float[] want = new float[heads * rank];
        for (int h = 0; h < heads; h++) {
            for (int t = 0; t < positions; t++) {
                VectorOps.axpy(p[h * positions + t], lat, t * rank, want, h * rank, rank);
            }
        }
        float[] whole = new float[heads * rank];
        LatentAttention.contexts(p, 0, positions, heads, lat, 0, rank, positions, whole, 0, 0, rank);
        float[] parts = new float[heads * rank];
        int slice = 4 * Simd.L;
        for (int c0 = 0; c0 < rank; c0 += slice) {
            LatentAttention.contexts(p, 0, positions, heads, lat, 0, rank, positions, parts, 0, c0, Math.min(rank, c0 + slice));
        }
        assertBits(want, whole, "contexts");
        assertBits(want, parts, "sliced contexts");
    }
}
