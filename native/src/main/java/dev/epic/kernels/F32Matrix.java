package dev.epic.kernels;

import static dev.epic.kernels.Simd.F;
import static dev.epic.kernels.Simd.L;
import static dev.epic.kernels.Simd.LE;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;

final class F32Matrix extends DenseMatrix {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    F32Matrix(MemorySegment data, int rows, int cols) {
        super(data, rows, cols, 4);
    }

    @Override
    public WeightLayout layout() {
        return WeightLayout.plain(WeightLayout.Format.F32, data);
    }

    @Override
    void chunk4(float[] x, int xOff, int ra, int rb, int rc, int rd, int k0, int body, float[] acc) {
        long b0 = (long) ra * cols * 4, b1 = (long) rb * cols * 4, b2 = (long) rc * cols * 4, b3 = (long) rd * cols * 4;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c = k0; c < body; c += L) {
            FloatVector u = FloatVector.fromArray(F, x, xOff + c);
            a0 = FloatVector.fromMemorySegment(F, data, b0 + 4L * c, LE).fma(u, a0);
            a1 = FloatVector.fromMemorySegment(F, data, b1 + 4L * c, LE).fma(u, a1);
            a2 = FloatVector.fromMemorySegment(F, data, b2 + 4L * c, LE).fma(u, a2);
            a3 = FloatVector.fromMemorySegment(F, data, b3 + 4L * c, LE).fma(u, a3);
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, L);
        a2.intoArray(acc, 2 * L);
        a3.intoArray(acc, 3 * L);
    }

    @Override
    float weight(int r, int c) {
        return data.get(F32, ((long) r * cols + c) * 4);
    }

    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        MemorySegment.copy(data, F32, ((long) r * cols + c0) * 4, dst, off, c1 - c0);
    }

    @Override
    public long storageBytes() {
        return (long) rows * cols * 4;
    }
}
