package dev.epic.model;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.zip.CRC32C;

/**
 * A kept prefix block ({@link KvBlock}) as bytes, for a prefix cache's disk tier: its values exactly as
 * its cache stored them (fp32, or bf16 bits), so a block read back restores the bits that were kept.
 *
 * <p>Layout, little-endian: the magic {@code EPICKVB1}; dtype (1 byte: 0 fp32, 1 bf16); layers,
 * positions, rank and rope (4 bytes each); the caller's label (4-byte length, then its bytes: what
 * the block is the KV of); then per layer the latents [positions x rank] and the rope keys
 * [positions x rope]; last a CRC32C of all that came before, so a torn or damaged file is refused
 * rather than restored.
 */
public final class KvBlockCodec {
    private static final long MAGIC = 0x3142564B43495045L; // "EPICKVB1" read little-endian
    private static final int HEADER = 8 + 1 + 4 * 4 + 4;

    private KvBlockCodec() {
    }

    /** A file that is not a whole, undamaged block of the expected shape and label. */
    public static final class BadBlockException extends Exception {
        BadBlockException(String message) {
            super(message);
        }
    }

    /** The bytes of {@code block}, labelled with {@code label}. */
    public static byte[] encode(KvBlock block, byte[] label) {
        KvPage page = block.page();
        int layers = page.layers();
        int positions = page.positions;
        int rank = block.rank();
        int rope = block.rope();
        KvCacheDtype dtype = page.dtype();
        long payload = (long) layers * positions * (rank + rope) * dtype.bytes();
        long size = HEADER + label.length + payload + 4;
        if (size > Integer.MAX_VALUE - 16) {
            throw new IllegalArgumentException("a block of " + size + " bytes is too large for one file");
        }
        ByteBuffer b = ByteBuffer.allocate((int) size).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(MAGIC).put((byte) dtype.ordinal()).putInt(layers).putInt(positions).putInt(rank).putInt(rope);
        b.putInt(label.length).put(label);
        for (int layer = 0; layer < layers; layer++) {
            if (dtype == KvCacheDtype.FP32) {
                b.asFloatBuffer().put(page.latent[layer], 0, positions * rank);
                b.position(b.position() + positions * rank * Float.BYTES);
                b.asFloatBuffer().put(page.kPe[layer], 0, positions * rope);
                b.position(b.position() + positions * rope * Float.BYTES);
            } else {
                b.asShortBuffer().put(page.latent16[layer], 0, positions * rank);
                b.position(b.position() + positions * rank * Short.BYTES);
                b.asShortBuffer().put(page.kPe16[layer], 0, positions * rope);
                b.position(b.position() + positions * rope * Short.BYTES);
            }
        }
        CRC32C crc = new CRC32C();
        crc.update(b.array(), 0, b.position());
        b.putInt((int) crc.getValue());
        return b.array();
    }

    /**
     * The block {@code bytes} hold, checked against the shape a cache of this model would store and the
     * label it was kept under; a new, frozen page that a prefix cache keeps ({@link KvBlock#release} when
     * it is not kept).
     */
    public static KvBlock decode(byte[] bytes, byte[] label, int layers, int positions, int rank, int rope,
            KvCacheDtype dtype) throws BadBlockException {
        long payload = (long) layers * positions * (rank + rope) * dtype.bytes();
        long size = HEADER + label.length + payload + 4;
        if (bytes.length != size) {
            throw new BadBlockException(bytes.length + " bytes where a block is " + size + " (truncated or another shape)");
        }
        ByteBuffer b = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        if (b.getLong() != MAGIC) {
            throw new BadBlockException("not a KV block file (bad magic)");
        }
        CRC32C crc = new CRC32C();
        crc.update(bytes, 0, bytes.length - 4);
        if ((int) crc.getValue() != b.getInt(bytes.length - 4)) {
            throw new BadBlockException("checksum mismatch (damaged)");
        }
        int d = b.get();
        int[] shape = {b.getInt(), b.getInt(), b.getInt(), b.getInt()};
        if (d != dtype.ordinal() || !Arrays.equals(shape, new int[] {layers, positions, rank, rope})) {
            throw new BadBlockException("a block of dtype " + d + " and shape " + Arrays.toString(shape) + ", not "
                    + dtype.id() + " " + Arrays.toString(new int[] {layers, positions, rank, rope}));
        }
        byte[] stored = new byte[b.getInt()];
        if (stored.length != label.length) {
            throw new BadBlockException("the label differs (another prefix)");
        }
        b.get(stored);
        if (!Arrays.equals(stored, label)) {
            throw new BadBlockException("the label differs (another prefix)");
        }
        KvPage page = new KvPage(positions, layers, rank, rope, dtype);
        for (int layer = 0; layer < layers; layer++) {
            if (dtype == KvCacheDtype.FP32) {
                b.asFloatBuffer().get(page.latent[layer], 0, positions * rank);
                b.position(b.position() + positions * rank * Float.BYTES);
                b.asFloatBuffer().get(page.kPe[layer], 0, positions * rope);
                b.position(b.position() + positions * rope * Float.BYTES);
            } else {
                b.asShortBuffer().get(page.latent16[layer], 0, positions * rank);
                b.position(b.position() + positions * rank * Short.BYTES);
                b.asShortBuffer().get(page.kPe16[layer], 0, positions * rope);
                b.position(b.position() + positions * rope * Short.BYTES);
            }
        }
        return new KvBlock(page.freeze(), rank, rope);
    }
}
