package dev.epic.model;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;

class KvBlockCodecTest {
    private static final int LAYERS = 3;
    private static final int RANK = 8;
    private static final int ROPE = 4;
    private static final int P = KvPage.POSITIONS;
    private static final byte[] LABEL = {1, 2, 3, 4, 5};

    /** A cache of one page of random values, NaN and signed zero among them, kept as a block. */
    private static HeapKvCache filled(KvCacheDtype dtype, long seed) {
        HeapKvCache c = new HeapKvCache(LAYERS, RANK, ROPE, 1000, dtype);
        Random r = new Random(seed);
        for (int layer = 0; layer < LAYERS; layer++) {
            for (int p = 0; p < P; p++) {
                float[] lat = new float[RANK];
                float[] pe = new float[ROPE];
                for (int i = 0; i < RANK; i++) {
                    lat[i] = (float) r.nextGaussian();
                }
                for (int i = 0; i < ROPE; i++) {
                    pe[i] = (float) r.nextGaussian() * 100;
                }
                if (p == 3) {
                    lat[0] = -0f;
                    pe[1] = Float.NaN;
                }
                c.write(layer, p, lat, 0, pe, 0);
            }
        }
        c.setLength(P);
        return c;
    }

    private static KvBlock decode(byte[] bytes, KvCacheDtype dtype) throws KvBlockCodec.BadBlockException {
        return KvBlockCodec.decode(bytes, LABEL, LAYERS, P, RANK, ROPE, dtype);
    }

    /** A block read back restores a cache to the bits kept, fp32 and bf16 alike. */
    @Test
    void aBlockReadBackRestoresTheBitsKept() throws Exception {
        for (KvCacheDtype dtype : KvCacheDtype.values()) {
            HeapKvCache c = filled(dtype, 7);
            KvBlock kept = KvBlock.copy(c, LAYERS, RANK, ROPE, 0, P, 1)[0];
            KvBlock back = decode(KvBlockCodec.encode(kept, LABEL), dtype);
            HeapKvCache d = new HeapKvCache(LAYERS, RANK, ROPE, 1000, dtype);
            back.writeTo(d, 0);
            d.setLength(P);
            for (int layer = 0; layer < LAYERS; layer++) {
                if (dtype == KvCacheDtype.FP32) {
                    assertArrayEquals(bits(c.latents(layer, P, RANK, ROPE), P * RANK),
                            bits(d.latents(layer, P, RANK, ROPE), P * RANK), dtype + " layer " + layer);
                    assertArrayEquals(bits(c.ropeKeys(layer, P, RANK, ROPE), P * ROPE),
                            bits(d.ropeKeys(layer, P, RANK, ROPE), P * ROPE), dtype + " layer " + layer);
                } else {
                    assertArrayEquals(Arrays.copyOf(c.latentsBf16(layer, P, RANK, ROPE), P * RANK),
                            Arrays.copyOf(d.latentsBf16(layer, P, RANK, ROPE), P * RANK), dtype + " layer " + layer);
                    assertArrayEquals(Arrays.copyOf(c.ropeKeysBf16(layer, P, RANK, ROPE), P * ROPE),
                            Arrays.copyOf(d.ropeKeysBf16(layer, P, RANK, ROPE), P * ROPE), dtype + " layer " + layer);
                }
            }
        }
    }

    private static int[] bits(float[] v, int n) {
        int[] b = new int[n];
        for (int i = 0; i < n; i++) {
            b[i] = Float.floatToRawIntBits(v[i]);
        }
        return b;
    }

    /** A torn, damaged, mislabelled or misshapen file is refused, saying why, never restored. */
    @Test
    void aBadFileIsRefused() throws Exception {
        HeapKvCache c = filled(KvCacheDtype.FP32, 8);
        byte[] good = KvBlockCodec.encode(KvBlock.copy(c, LAYERS, RANK, ROPE, 0, P, 1)[0], LABEL);
        decode(good, KvCacheDtype.FP32);

        String torn = assertThrows(KvBlockCodec.BadBlockException.class,
                () -> decode(Arrays.copyOf(good, good.length - 100), KvCacheDtype.FP32)).getMessage();
        assertTrue(torn.contains("truncated"), torn);
        for (int at : new int[] {0, 40, good.length / 2, good.length - 1}) {
            byte[] damaged = good.clone();
            damaged[at] ^= 0x10;
            assertThrows(KvBlockCodec.BadBlockException.class, () -> decode(damaged, KvCacheDtype.FP32), "byte " + at);
        }
        String other = assertThrows(KvBlockCodec.BadBlockException.class,
                () -> KvBlockCodec.decode(good, new byte[] {1, 2, 3, 4, 6}, LAYERS, P, RANK, ROPE, KvCacheDtype.FP32))
                .getMessage();
        assertTrue(other.contains("label"), other);
        assertThrows(KvBlockCodec.BadBlockException.class,
                () -> KvBlockCodec.decode(good, LABEL, LAYERS, P, ROPE, RANK, KvCacheDtype.FP32), "rank and rope swapped");
        assertThrows(KvBlockCodec.BadBlockException.class, () -> decode(good, KvCacheDtype.BF16));
    }
}
