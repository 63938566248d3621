package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

final class Bf16Matrix extends DenseMatrix {
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    Bf16Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 2);
    }

    /** bf16 is the top half of an fp32: widening is exact. */
    static float widen(short bits) {
        return Float.intBitsToFloat((bits & 0xffff) << 16);
    }

    @Override
    float dot(int r, float[] x, int xOff) {
        long base = (long) r * cols * 2;
        float sum = 0f;
        for (int c = 0; c < cols; c++) {
            sum += widen(data.get(U16, base + 2L * c)) * x[xOff + c];
        }
        return sum;
    }

    @Override
    public void row(int r, float[] dst, int off) {
        long base = (long) r * cols * 2;
        for (int c = 0; c < cols; c++) {
            dst[off + c] = widen(data.get(U16, base + 2L * c));
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 2;
    }
}
