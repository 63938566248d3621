package dev.epic.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Random;
import org.junit.jupiter.api.Test;

/** The in-register lane trees give the scalar tree's bits (the accumulation contract depends on it). */
class SimdTest {
    @Test
    void registerTreesEqualTheScalarTree() {
        Random rnd = new Random(11);
        int l = Simd.L;
        for (int trial = 0; trial < 2000; trial++) {
            float[] a = new float[16 * l + 3];
            for (int i = 0; i < a.length; i++) {
                // Mixed magnitudes so that the order of additions shows in the rounding.
                a[i] = (float) (rnd.nextGaussian() * Math.pow(2, rnd.nextInt(40) - 20));
            }
            float[] want = new float[16];
            for (int j = 0; j < 16; j++) {
                want[j] = Simd.sumLanes(a.clone(), 3 + j * l);
            }
            float[] four = a.clone();
            Simd.sumLanes4(four, 3);
            float[] sixteen = a.clone();
            Simd.sumLanes16(sixteen, 3);
            for (int j = 0; j < 16; j++) {
                if (j < 4) {
                    assertEquals(Float.floatToIntBits(want[j]), Float.floatToIntBits(four[3 + j]), "sumLanes4 lane " + j);
                }
                assertEquals(Float.floatToIntBits(want[j]), Float.floatToIntBits(sixteen[3 + j]), "sumLanes16 lane " + j);
            }
        }
    }
}
