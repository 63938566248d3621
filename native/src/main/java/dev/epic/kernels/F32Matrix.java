package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

final class F32Matrix extends DenseMatrix {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    F32Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 4);
    }

    @Override
    float dot(int r, float[] x, int xOff) {
        long base = (long) r * cols * 4;
        float sum = 0f;
        for (int c = 0; c < cols; c++) {
            sum += data.get(F32, base + 4L * c) * x[xOff + c];
        }
        return sum;
    }

    @Override
    public void row(int r, float[] dst, int off) {
        long base = (long) r * cols * 4;
        for (int c = 0; c < cols; c++) {
            dst[off + c] = data.get(F32, base + 4L * c);
        }
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 4;
    }
}
