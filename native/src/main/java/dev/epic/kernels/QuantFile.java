package dev.epic.kernels;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * The on-disk form of one group-quantised matrix, little-endian:
 *
 * <pre>
 *   0  8 bytes  magic "EPICQNT1"
 *   8  int32    bits per code (8 or 4)
 *  12  int32    rows
 *  16  int32    cols
 *  20  int32    group size (32)
 *  24  int64    scale bytes  (rows * ceil(cols/32) * 4, fp32 [rows, groups])
 *  32  int64    code bytes   (rows * ceil(cols/32) * 32 or 16)
 *  40  24 bytes zero
 *  64  scales, then codes at the next multiple of 64
 * </pre>
 *
 * Loading maps the file: the returned matrix reads the page cache directly.
 */
final class QuantFile {
    private static final byte[] MAGIC = "EPICQNT1".getBytes(StandardCharsets.US_ASCII);
    private static final int HEADER = 64;

    private QuantFile() {}

    static void save(Matrix m, Path path) throws IOException {
        if (!(m instanceof GroupQuantMatrix q)) {
            throw new IllegalArgumentException("only q8/q4 matrices can be saved, got " + m.getClass().getSimpleName());
        }
        int bits = q instanceof Q8Matrix ? 8 : 4;
        long scaleBytes = q.scaleBytes();
        long codeBytes = q.codeBytes();
        long codesAt = codesOffset(scaleBytes);
        ByteBuffer header = ByteBuffer.allocate(HEADER).order(ByteOrder.LITTLE_ENDIAN);
        header.put(MAGIC).putInt(bits).putInt(q.rows).putInt(q.cols).putInt(GroupQuantMatrix.GROUP)
                .putLong(scaleBytes).putLong(codeBytes).position(0);
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(ch, header);
            writeSegment(ch, q.scales.asSlice(0, scaleBytes));
            writeFully(ch, ByteBuffer.allocate((int) (codesAt - HEADER - scaleBytes)));
            writeSegment(ch, q.data.asSlice(0, codeBytes));
        }
    }

    private static long codesOffset(long scaleBytes) {
        return Math.ceilDiv(HEADER + scaleBytes, 64) * 64;
    }

    private static void writeSegment(FileChannel ch, MemorySegment seg) throws IOException {
        long chunk = 1L << 28;
        for (long o = 0; o < seg.byteSize(); o += chunk) {
            writeFully(ch, seg.asSlice(o, Math.min(chunk, seg.byteSize() - o)).asByteBuffer());
        }
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    static Matrix load(Path path, Arena arena) throws IOException {
        MemorySegment file;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            if (ch.size() < HEADER) {
                throw new IOException(path + ": not a quantised matrix (" + ch.size() + " bytes, header needs "
                        + HEADER + ")");
            }
            file = ch.map(FileChannel.MapMode.READ_ONLY, 0, ch.size(), arena);
        }
        byte[] magic = file.asSlice(0, 8).toArray(ValueLayout.JAVA_BYTE);
        if (!java.util.Arrays.equals(magic, MAGIC)) {
            throw new IOException(path + ": bad magic, expected EPICQNT1");
        }
        ValueLayout.OfInt i32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        ValueLayout.OfLong i64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
        int bits = file.get(i32, 8);
        int rows = file.get(i32, 12);
        int cols = file.get(i32, 16);
        int group = file.get(i32, 20);
        long scaleBytes = file.get(i64, 24);
        long codeBytes = file.get(i64, 32);
        if (bits != 8 && bits != 4) {
            throw new IOException(path + ": bits per code is " + bits + ", expected 8 or 4");
        }
        if (group != GroupQuantMatrix.GROUP) {
            throw new IOException(path + ": group size is " + group + ", expected " + GroupQuantMatrix.GROUP);
        }
        if (rows <= 0 || cols <= 0) {
            throw new IOException(path + ": shape [" + rows + ", " + cols + "] must be positive");
        }
        long groups = Math.ceilDiv(cols, group);
        long wantScales = rows * groups * 4;
        long wantCodes = rows * groups * (bits == 8 ? group : group / 2);
        if (scaleBytes != wantScales || codeBytes != wantCodes) {
            throw new IOException(path + ": scale/code sizes " + scaleBytes + "/" + codeBytes + " do not match shape ["
                    + rows + ", " + cols + "] (expected " + wantScales + "/" + wantCodes + ")");
        }
        long codesAt = codesOffset(scaleBytes);
        if (file.byteSize() < codesAt + codeBytes) {
            throw new IOException(path + ": truncated, " + file.byteSize() + " bytes, expected " + (codesAt + codeBytes));
        }
        MemorySegment scales = file.asSlice(HEADER, scaleBytes);
        MemorySegment codes = file.asSlice(codesAt, codeBytes);
        return bits == 8 ? new Q8Matrix(codes, scales, rows, cols) : new Q4Matrix(codes, scales, rows, cols);
    }
}
