package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
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

    /** Rows [0, positions) of a [positions x width] array as pages of {@code page} rows (the last one padded). */
    private static float[][] paged(float[] a, int width, int positions, int page) {
        float[][] pages = new float[Math.ceilDiv(positions, page)][page * width];
        for (int t = 0; t < positions; t++) {
            System.arraycopy(a, t * width, pages[t / page], t % page * width, width);
        }
        return pages;
    }

    private static short[][] paged(short[] a, int width, int positions, int page) {
        short[][] pages = new short[Math.ceilDiv(positions, page)][page * width];
        for (int t = 0; t < positions; t++) {
            System.arraycopy(a, t * width, pages[t / page], t % page * width, width);
        }
        return pages;
    }

    /**
     * A paged cache (a KV cache's 16-position pages, or odd sizes) gives the contiguous kernels' bits, fp32
     * and bf16, for scores over any position range and contexts over any columns.
     */
    @ParameterizedTest
    @CsvSource({"16, 512, 64, 37, 16", "8, 256, 32, 300, 16", "11, 40, 8, 9, 4", "3, 16, 16, 5, 3", "16, 512, 64, 16, 16",
            "9, 256, 32, 1, 16", "8, 256, 32, 33, 7"})
    void pagedCachesGiveTheContiguousBits(int heads, int rank, int rope, int positions, int page) {
        SplittableRandom rnd = new SplittableRandom(heads * 13L + rank + positions * 7L + page);
        int qkStride = rope + 7;
        float[] lat = random(rnd, positions * rank), pe = random(rnd, positions * rope);
        short[] lat16 = randomBf16(rnd, positions * rank), pe16 = randomBf16(rnd, positions * rope);
        float[] qLat = random(rnd, heads * rank), qPe = random(rnd, heads * qkStride + 3);
        float[] want = new float[heads * positions], got = new float[heads * positions];
        LatentAttention.scores(lat, 0, rank, pe, 0, rope, positions, qLat, 0, qPe, 3, qkStride, heads, want, 0, positions);
        for (int t0 = 0; t0 < positions; t0 += 5) { // ranges that start and end inside pages
            LatentAttention.scoresPaged(paged(lat, rank, positions, page), paged(pe, rope, positions, page), page, rank,
                    rope, t0, Math.min(positions, t0 + 5), qLat, 0, qPe, 3, qkStride, heads, got, 0, positions);
        }
        assertBits(want, got, "paged scores");
        LatentAttention.scores(lat16, 0, rank, pe16, 0, rope, positions, qLat, 0, qPe, 3, qkStride, heads, want, 0,
                positions);
        LatentAttention.scoresPaged(paged(lat16, rank, positions, page), paged(pe16, rope, positions, page), page, rank,
                rope, 0, positions, qLat, 0, qPe, 3, qkStride, heads, got, 0, positions);
        assertBits(want, got, "paged bf16 scores");

        float[] p = random(rnd, heads * positions);
        int slice = 4 * Simd.L;
        for (int[] r : new int[][] {{0, rank}, {0, Math.min(rank, slice)}, {Math.min(rank, slice), rank}}) {
            float[] ctx = random(rnd, heads * rank), ctxPaged = ctx.clone();
            LatentAttention.contexts(p, 0, positions, heads, lat, 0, rank, positions, ctx, 0, r[0], r[1]);
            LatentAttention.contextsPaged(p, 0, positions, heads, paged(lat, rank, positions, page), page, rank, positions,
                    ctxPaged, 0, r[0], r[1]);
            assertBits(ctx, ctxPaged, "paged contexts [" + r[0] + ", " + r[1] + ")");
            float[] ctx16 = random(rnd, heads * rank), ctx16Paged = ctx16.clone();
            LatentAttention.contexts(p, 0, positions, heads, lat16, 0, rank, positions, ctx16, 0, r[0], r[1]);
            LatentAttention.contextsPaged(p, 0, positions, heads, paged(lat16, rank, positions, page), page, rank,
                    positions, ctx16Paged, 0, r[0], r[1]);
            assertBits(ctx16, ctx16Paged, "paged bf16 contexts [" + r[0] + ", " + r[1] + ")");
        }
    }

    /**
     * A bf16 cache of n values: mixed magnitudes (so that a changed order shows in the rounding), with
     * zeros of both signs sprinkled in.
     */
    private static short[] randomBf16(SplittableRandom rnd, int n) {
        short[] a = new short[n];
        for (int i = 0; i < n; i++) {
            int kind = rnd.nextInt(16);
            a[i] = kind == 0 ? (short) 0x8000 : kind == 1 ? 0
                    : Bf16.round((float) ((rnd.nextDouble() * 2 - 1) * Math.scalb(1.0, rnd.nextInt(-12, 4))));
        }
        return a;
    }

    /** The contract's widening, written out: each short is the top half of an fp32. */
    private static float[] widened(short[] a) {
        float[] w = new float[a.length];
        for (int i = 0; i < a.length; i++) {
            w[i] = Float.intBitsToFloat(a[i] << 16);
        }
        return w;
    }

    /** Scores from a bf16 cache are the fp32 kernel's bits on the widened cache, whole or split by position. */
    @ParameterizedTest
    @CsvSource({"16, 512, 64, 33", "16, 512, 64, 2", "3, 512, 64, 7", "9, 40, 8, 7", "3, 40, 8, 1", "16, 40, 8, 33",
            "9, 256, 32, 2", "8, 16, 16, 1", "11, 17, 3, 9", "16, 512, 64, 1", "16, 512, 64, 130", "9, 40, 8, 129"})
    void bf16ScoresEqualFp32OnTheWidenedCache(int heads, int rank, int rope, int positions) {
        SplittableRandom rnd = new SplittableRandom(heads * 31L + rank * 7L + rope + positions);
        int qkStride = rope + 5, latOff = 3, peOff = 11, qLatOff = 2, outOff = 4, outStride = positions + 1;
        short[] lat = randomBf16(rnd, latOff + positions * rank + 1), pe = randomBf16(rnd, peOff + positions * rope);
        float[] qLat = random(rnd, qLatOff + heads * rank), qPe = random(rnd, heads * qkStride + 3);
        qLat[qLatOff] = -0f;
        float[] want = random(rnd, outOff + heads * outStride), got = want.clone(), parts = want.clone();
        LatentAttention.scores(widened(lat), latOff, rank, widened(pe), peOff, rope, positions, qLat, qLatOff, qPe, 3,
                qkStride, heads, want, outOff, outStride);
        LatentAttention.scores(lat, latOff, rank, pe, peOff, rope, positions, qLat, qLatOff, qPe, 3, qkStride, heads, got,
                outOff, outStride);
        assertBits(want, got, "bf16 scores");
        for (int t0 = 0; t0 < positions; t0 += 3) { // odd splits take the single-position paths
            int n = Math.min(3, positions - t0);
            LatentAttention.scores(lat, latOff + t0 * rank, rank, pe, peOff + t0 * rope, rope, n, qLat, qLatOff, qPe, 3,
                    qkStride, heads, parts, outOff + t0, outStride);
        }
        assertBits(want, parts, "split bf16 scores");
    }

    /** Contexts from a bf16 cache are the fp32 kernel's bits on the widened cache, for any column range. */
    @ParameterizedTest
    @CsvSource({"16, 512, 33", "16, 512, 2", "3, 512, 7", "9, 40, 7", "3, 40, 1", "16, 40, 33", "8, 256, 2",
            "11, 17, 9", "16, 512, 1", "16, 512, 200", "9, 40, 129"})
    void bf16ContextsEqualFp32OnTheWidenedCache(int heads, int rank, int positions) {
        SplittableRandom rnd = new SplittableRandom(heads * 131L + rank * 3L + positions);
        int pOff = 5, pStride = positions + 2, latOff = 7, ctxOff = 1;
        float[] p = random(rnd, pOff + heads * pStride);
        p[pOff] = -0f;
        short[] lat = randomBf16(rnd, latOff + positions * rank);
        float[] wide = widened(lat);
        int l = Simd.L;
        int[][] ranges = {{0, rank}, {0, Math.min(rank, 2 * l)}, {3, rank - 2}, {l, Math.min(rank, 3 * l + 5)},
            {rank - 1, rank}, {rank / 2, rank / 2}, {1, Math.min(rank, 4 * l + 1)}};
        for (int[] r : ranges) {
            float[] want = random(rnd, ctxOff + heads * rank + 2), got = want.clone();
            LatentAttention.contexts(p, pOff, pStride, heads, wide, latOff, rank, positions, want, ctxOff, r[0], r[1]);
            LatentAttention.contexts(p, pOff, pStride, heads, lat, latOff, rank, positions, got, ctxOff, r[0], r[1]);
            assertBits(want, got, "bf16 contexts [" + r[0] + ", " + r[1] + ")");
        }
        // Slices as threads take them: slices of whole vectors give the whole range's bits; any slices give
        // the fp32 kernel's bits for the same slices (columns past a slice's last full vector are added
        // without an fma, in both kernels).
        float[] whole = new float[ctxOff + heads * rank];
        LatentAttention.contexts(p, pOff, pStride, heads, wide, latOff, rank, positions, whole, ctxOff, 0, rank);
        for (int slice : new int[] {l, 3 * l, 3 * l + 1}) {
            float[] want = new float[whole.length], parts = new float[whole.length];
            for (int c0 = 0; c0 < rank; c0 += slice) {
                int c1 = Math.min(rank, c0 + slice);
                LatentAttention.contexts(p, pOff, pStride, heads, wide, latOff, rank, positions, want, ctxOff, c0, c1);
                LatentAttention.contexts(p, pOff, pStride, heads, lat, latOff, rank, positions, parts, ctxOff, c0, c1);
            }
            assertBits(want, parts, "bf16 contexts in slices of " + slice);
            if (slice % l == 0) {
                assertBits(whole, parts, "bf16 contexts in slices of " + slice + " against the whole range");
            }
        }
    }

    /** The bf16 axpys (the tail of the bf16 contexts) is the fp32 one on the widened rows. */
    @Test
    void bf16AxpysEqualFp32OnTheWidenedRows() {
        SplittableRandom rnd = new SplittableRandom(17);
        for (int n : new int[] {1, 15, 17, 64, 100, 1030}) {
            for (int rows : new int[] {1, 3, 9}) {
                int stride = n + 3;
                short[] a = randomBf16(rnd, 2 + rows * stride);
                float[] coef = random(rnd, rows + 2), want = random(rnd, n + 4), got = want.clone();
                VectorOps.axpys(coef, 2, rows, widened(a), 2, stride, want, 4, n);
                VectorOps.axpys(coef, 2, rows, a, 2, stride, got, 4, n);
                assertBits(want, got, "bf16 axpys n=" + n + " rows=" + rows);
            }
        }
    }
}
