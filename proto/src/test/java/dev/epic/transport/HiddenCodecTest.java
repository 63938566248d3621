package dev.epic.transport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.protobuf.ByteString;
import dev.epic.proto.HiddenEncoding;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class HiddenCodecTest {
    private static float[] activations(int n, long seed) {
        SplittableRandom rnd = new SplittableRandom(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            // a few outliers, as real residual streams have
            x[i] = (float) (rnd.nextGaussian() * (i % 37 == 0 ? 20 : 1));
        }
        return x;
    }

    private static float[] roundTrip(HiddenEncoding enc, float[] x, int rows, int hidden) {
        HiddenCodec.Encoded e = HiddenCodec.encode(enc, x, rows, hidden);
        assertEquals(HiddenCodec.dataBytes(enc, rows, hidden), e.data().size());
        assertEquals(HiddenCodec.scaleBytes(enc, rows, hidden), e.scales().size());
        float[] y = new float[rows * hidden];
        HiddenCodec.decode(enc, e.data(), e.scales(), rows, hidden, y);
        return y;
    }

    @Test
    void fp64SumsAreBitExactAndOnlyForAnswers() {
        double[] sums = new double[3 * 40];
        SplittableRandom rnd = new SplittableRandom(5);
        for (int i = 0; i < sums.length; i++) {
            sums[i] = rnd.nextGaussian() * 1e3 + 1e-12 * i; // bits a float would drop
        }
        HiddenCodec.Encoded e = HiddenCodec.encodeSums(HiddenEncoding.FP64, sums, 3, 40);
        assertEquals(8 * sums.length, e.data().size());
        double[] back = new double[sums.length];
        HiddenCodec.decodeSums(HiddenEncoding.FP64, e.data(), e.scales(), 3, 40, back);
        assertArrayEquals(sums, back);
        // lossy answer encodings round to float first
        HiddenCodec.Encoded f = HiddenCodec.encodeSums(HiddenEncoding.FP32, sums, 3, 40);
        HiddenCodec.decodeSums(HiddenEncoding.FP32, f.data(), f.scales(), 3, 40, back);
        for (int i = 0; i < sums.length; i++) {
            assertEquals((float) sums[i], back[i]);
        }
        // hidden states of a request are never FP64
        assertThrows(IllegalArgumentException.class,
                () -> HiddenCodec.encode(HiddenEncoding.FP64, new float[4], 1, 4));
        assertThrows(IllegalArgumentException.class, () -> HiddenCodec.decodeSums(HiddenEncoding.FP64,
                e.data().substring(8), e.scales(), 3, 40, back));
    }

    @Test
    void fp32IsBitExact() {
        float[] x = activations(7 * 160, 1);
        x[3] = Float.MIN_VALUE;
        x[4] = -0f;
        x[5] = Float.MAX_VALUE;
        assertArrayEquals(x, roundTrip(HiddenEncoding.FP32, x, 7, 160));
    }

    @Test
    void bf16RoundsToNearestEven() {
        float[] x = activations(5 * 64, 2);
        float[] y = roundTrip(HiddenEncoding.BF16, x, 5, 64);
        for (int i = 0; i < x.length; i++) {
            // the nearest bf16 is within half an ulp (2^-8 relative) and has 16 zero low bits
            assertEquals(0, Float.floatToRawIntBits(y[i]) & 0xffff);
            assertTrue(Math.abs(y[i] - x[i]) <= Math.abs(x[i]) * 0x1p-8f, i + ": " + x[i] + " -> " + y[i]);
        }
        // explicit ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> even (1); 1 + 3*2^-8 -> 1 + 2^-6
        float[] ties = {1f + 0x1p-8f, 1f + 3 * 0x1p-8f};
        float[] r = roundTrip(HiddenEncoding.BF16, ties, 1, 2);
        assertEquals(1f, r[0]);
        assertEquals(1f + 0x1p-6f, r[1]);
    }

    @Test
    void fp8UsesOneScalePerRowAndGroup() {
        int rows = 3;
        int hidden = 300; // 3 groups, the last partial
        float[] x = activations(rows * hidden, 4);
        float[] y = roundTrip(HiddenEncoding.FP8_E4M3, x, rows, hidden);
        for (int r = 0; r < rows; r++) {
            for (int g = 0; g < 3; g++) {
                int from = r * hidden + g * 128;
                int to = Math.min(from + 128, (r + 1) * hidden);
                float amax = 0;
                for (int i = from; i < to; i++) {
                    amax = Math.max(amax, Math.abs(x[i]));
                }
                for (int i = from; i < to; i++) {
                    // e4m3 has 3 mantissa bits: relative error <= 2^-4 for normals; absolute floor from subnormals
                    float tol = Math.max(Math.abs(x[i]) * 0x1p-4f, amax / 448f * 0x1p-10f);
                    assertTrue(Math.abs(y[i] - x[i]) <= tol * 1.0001f, r + "," + i + ": " + x[i] + " -> " + y[i]);
                }
            }
        }
        float[] zeros = new float[2 * 64];
        assertArrayEquals(zeros, roundTrip(HiddenEncoding.FP8_E4M3, zeros, 2, 64));
    }

    @Test
    void wrongSizesAreClearErrors() {
        HiddenCodec.Encoded e = HiddenCodec.encode(HiddenEncoding.FP32, new float[8], 2, 4);
        var err = assertThrows(IllegalArgumentException.class,
                () -> HiddenCodec.decode(HiddenEncoding.FP32, e.data(), ByteString.EMPTY, 3, 4, new float[12]));
        assertTrue(err.getMessage().contains("expected 48"), err.getMessage());
        HiddenCodec.Encoded f = HiddenCodec.encode(HiddenEncoding.FP8_E4M3, new float[8], 2, 4);
        err = assertThrows(IllegalArgumentException.class,
                () -> HiddenCodec.decode(HiddenEncoding.FP8_E4M3, f.data(), ByteString.EMPTY, 2, 4, new float[8]));
        assertTrue(err.getMessage().contains("scales"), err.getMessage());
        assertThrows(IllegalArgumentException.class,
                () -> HiddenCodec.encode(HiddenEncoding.HIDDEN_ENCODING_UNSPECIFIED, new float[8], 2, 4));
    }
}
