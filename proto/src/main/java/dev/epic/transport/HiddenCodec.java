package dev.epic.transport;

import com.google.protobuf.ByteString;
import com.google.protobuf.UnsafeByteOperations;
import dev.epic.kernels.Fp8E4M3;
import dev.epic.proto.HiddenEncoding;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.ShortBuffer;

/**
 * Encodes [rows x hidden] float32 activations into the wire formats of {@link HiddenEncoding}
 * (little-endian, row-major) and back. FP32 is exact; BF16 rounds to nearest even; FP8_E4M3 stores
 * e4m3fn codes with one float32 scale (amax / 448) per row and 128-element group.
 */
public final class HiddenCodec {
    /** Elements sharing one fp8 scale, as in DeepSeek's fp8 activations. */
    public static final int FP8_GROUP = 128;

    private static final float FP8_MAX = 448f;

    /** Encoded activations: data plus, for FP8_E4M3, the scales. */
    public record Encoded(ByteString data, ByteString scales) {}

    private HiddenCodec() {}

    public static int groupsPerRow(int hidden) {
        return (hidden + FP8_GROUP - 1) / FP8_GROUP;
    }

    public static int dataBytes(HiddenEncoding encoding, int rows, int hidden) {
        long n = (long) rows * hidden;
        return Math.toIntExact(switch (encoding) {
            case FP32 -> 4 * n;
            case BF16 -> 2 * n;
            case FP8_E4M3 -> n;
            case FP64 -> 8 * n;
            default -> throw unsupported(encoding);
        });
    }

    public static int scaleBytes(HiddenEncoding encoding, int rows, int hidden) {
        return encoding == HiddenEncoding.FP8_E4M3 ? 4 * rows * groupsPerRow(hidden) : 0;
    }

    /** Encodes src[0 .. rows*hidden) into a freshly allocated buffer (handed to gRPC without a copy). */
    public static Encoded encode(HiddenEncoding encoding, float[] src, int rows, int hidden) {
        int n = rows * hidden;
        byte[] data = new byte[dataBytes(encoding, rows, hidden)];
        ByteBuffer buf = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        ByteString scales = ByteString.EMPTY;
        switch (encoding) {
            case FP32 -> buf.asFloatBuffer().put(src, 0, n);
            case BF16 -> {
                ShortBuffer s = buf.asShortBuffer();
                for (int i = 0; i < n; i++) {
                    s.put(i, toBf16(src[i]));
                }
            }
            case FP8_E4M3 -> {
                int groups = groupsPerRow(hidden);
                float[] sc = new float[rows * groups];
                for (int r = 0; r < rows; r++) {
                    for (int g = 0; g < groups; g++) {
                        int from = r * hidden + g * FP8_GROUP;
                        int to = Math.min(from + FP8_GROUP, (r + 1) * hidden);
                        float amax = 0f;
                        for (int i = from; i < to; i++) {
                            amax = Math.max(amax, Math.abs(src[i]));
                        }
                        float scale = amax > 0f ? amax / FP8_MAX : 1f;
                        sc[r * groups + g] = scale;
                        float inv = 1f / scale;
                        for (int i = from; i < to; i++) {
                            data[i] = (byte) encodeE4m3(src[i] * inv);
                        }
                    }
                }
                byte[] sb = new byte[4 * sc.length];
                ByteBuffer.wrap(sb).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().put(sc);
                scales = UnsafeByteOperations.unsafeWrap(sb);
            }
            default -> throw unsupported(encoding);
        }
        return new Encoded(UnsafeByteOperations.unsafeWrap(data), scales);
    }

    /**
     * Decodes into dst[0 .. rows*hidden). Sizes are checked against rows and hidden so that a
     * malformed message fails with a clear error instead of reading garbage.
     */
    public static void decode(HiddenEncoding encoding, ByteString data, ByteString scales, int rows, int hidden,
            float[] dst) {
        int n = rows * hidden;
        int expected = dataBytes(encoding, rows, hidden);
        if (data.size() != expected) {
            throw new IllegalArgumentException("hidden states: " + data.size() + " bytes, expected " + expected
                    + " for " + rows + " rows x " + hidden + " in " + encoding);
        }
        if (dst.length < n) {
            throw new IllegalArgumentException("decode buffer holds " + dst.length + " floats, need " + n);
        }
        ByteBuffer buf = data.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        switch (encoding) {
            case FP32 -> buf.asFloatBuffer().get(dst, 0, n);
            case BF16 -> {
                ShortBuffer s = buf.asShortBuffer();
                for (int i = 0; i < n; i++) {
                    dst[i] = Float.intBitsToFloat((s.get(i) & 0xffff) << 16);
                }
            }
            case FP8_E4M3 -> {
                int groups = groupsPerRow(hidden);
                int scaleBytes = scaleBytes(encoding, rows, hidden);
                if (scales.size() != scaleBytes) {
                    throw new IllegalArgumentException("fp8 scales: " + scales.size() + " bytes, expected "
                            + scaleBytes + " (" + rows + " rows x " + groups + " groups of " + FP8_GROUP + ")");
                }
                FloatBuffer sc = scales.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer();
                for (int r = 0; r < rows; r++) {
                    for (int c = 0; c < hidden; c++) {
                        int i = r * hidden + c;
                        dst[i] = E4M3[buf.get(i) & 0xff] * sc.get(r * groups + c / FP8_GROUP);
                    }
                }
            }
            default -> throw unsupported(encoding);
        }
    }

    /**
     * Encodes per-row sums of weighted expert outputs (a worker's answer). FP64 keeps them exact;
     * any other encoding rounds them to float32 first.
     */
    public static Encoded encodeSums(HiddenEncoding encoding, double[] sums, int rows, int hidden) {
        int n = rows * hidden;
        if (encoding == HiddenEncoding.FP64) {
            byte[] data = new byte[dataBytes(encoding, rows, hidden)];
            ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().put(sums, 0, n);
            return new Encoded(UnsafeByteOperations.unsafeWrap(data), ByteString.EMPTY);
        }
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = (float) sums[i];
        }
        return encode(encoding, f, rows, hidden);
    }

    /** Decodes a worker's answer (any encoding, FP64 included) into dst[0 .. rows*hidden). */
    public static void decodeSums(HiddenEncoding encoding, ByteString data, ByteString scales, int rows, int hidden,
            double[] dst) {
        int n = rows * hidden;
        if (encoding == HiddenEncoding.FP64) {
            int expected = dataBytes(encoding, rows, hidden);
            if (data.size() != expected || dst.length < n) {
                throw new IllegalArgumentException("expert sums: " + data.size() + " bytes, expected " + expected
                        + " for " + rows + " rows x " + hidden + " in FP64");
            }
            data.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN).asDoubleBuffer().get(dst, 0, n);
            return;
        }
        float[] f = new float[n];
        decode(encoding, data, scales, rows, hidden, f);
        for (int i = 0; i < n; i++) {
            dst[i] = f[i];
        }
    }

    /** bfloat16 bits of v, round to nearest even (NaN stays NaN). */
    static short toBf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    private static final float[] E4M3 = Fp8E4M3.table();

    static int encodeE4m3(float v) {
        return Fp8E4M3.encode(v);
    }

    private static IllegalArgumentException unsupported(HiddenEncoding encoding) {
        return new IllegalArgumentException("unsupported hidden-state encoding " + encoding
                + " (expected FP32, BF16 or FP8_E4M3; FP64 for answers only)");
    }
}
