package dev.epic.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Shared layout of the group-quantised formats (llama.cpp Q8_0 / Q4_0 style): each row is cut into
 * groups of {@link #GROUP} columns (the last one zero-padded), each group has one fp32 scale. Codes
 * are row-major with a row stride of {@code groups * codeBytesPerGroup}; scales are [rows, groups].
 */
abstract sealed class GroupQuantMatrix extends DenseMatrix permits Q8Matrix, Q4Matrix {
    static final int GROUP = 32;
    static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    final MemorySegment scales;
    final int groups;
    final int codeBytesPerGroup;

    GroupQuantMatrix(MemorySegment codes, MemorySegment scales, int rows, int cols, int codeBytesPerGroup) {
        super(codes, rows, cols);
        this.scales = scales;
        this.parallel &= Parallel.accessibleByWorkers(scales);
        this.groups = Math.ceilDiv(cols, GROUP);
        this.codeBytesPerGroup = codeBytesPerGroup;
        if (codes.byteSize() < codeBytes()) {
            throw new IllegalArgumentException(format() + " codes for [" + rows + ", " + cols + "] need "
                    + codeBytes() + " bytes, have " + codes.byteSize());
        }
        if (scales.byteSize() < scaleBytes()) {
            throw new IllegalArgumentException(format() + " scales for [" + rows + ", " + cols + "] need "
                    + scaleBytes() + " bytes, have " + scales.byteSize());
        }
    }

    /** "q8" or "q4". */
    abstract String format();

    /** Codes plus scales of a [rows, cols] matrix in this layout, without building it. */
    static long storageBytes(int rows, int cols, int codeBytesPerGroup) {
        return (long) rows * Math.ceilDiv(cols, GROUP) * (codeBytesPerGroup + 4);
    }

    final long codeBytes() {
        return (long) rows * groups * codeBytesPerGroup;
    }

    final long scaleBytes() {
        return (long) rows * groups * 4;
    }

    final float scale(int r, int g) {
        return scales.get(F32, 4L * ((long) r * groups + g));
    }


    @Override
    void decode(int r, int c0, int c1, float[] dst, int off) {
        int c = c0;
        for (; c < c1 && c % GROUP != 0; c++) {
            dst[off + c - c0] = weight(r, c);
        }
        for (; c + GROUP <= c1; c += GROUP) {
            decodeGroup(r, c / GROUP, dst, off + c - c0);
        }
        for (; c < c1; c++) {
            dst[off + c - c0] = weight(r, c);
        }
    }

    /** Writes the GROUP weights of group g of row r to dst[off ..]. */
    abstract void decodeGroup(int r, int g, float[] dst, int off);

    @Override
    public long storageBytes() {
        return storageBytes(rows, cols, codeBytesPerGroup);
    }

    /** Widening costs more than bf16's: the tiled GEMM wins from batch 4 (q4 2816x1024: 273 against 358 us). */
    @Override
    int smallBatch() {
        return 3;
    }
}
