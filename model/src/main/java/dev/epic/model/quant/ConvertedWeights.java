package dev.epic.model.quant;

import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import dev.epic.model.WeightSource;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A {@link WeightSource} that hands out the linear weights in another {@link WeightFormat}: routed and
 * shared experts, dense MLPs, attention projections and lm_head. The token embedding (a row lookup) and
 * the router's gate weight (routing decisions are sensitive, and it is small) stay as stored.
 *
 * <p>Converted matrices live off-heap. With a cache directory (normally {@code <model>/epic-q8}) a
 * quantised matrix is mapped from {@code <dir>/<tensor name>.qnt} when present, so only the first run
 * (or {@code epic quantize}) pays for quantising; with {@code writeCache} missing files are written.
 */
public final class ConvertedWeights implements WeightSource {
    private static final Logger log = LoggerFactory.getLogger(ConvertedWeights.class);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final WeightSource stored;
    private final WeightFormat format;
    private final Path cacheDir; // null: no cache
    private final boolean writeCache;
    private final Arena arena = Arena.ofAuto();
    private int converted;
    private int mapped;

    public ConvertedWeights(WeightSource stored, WeightFormat format, Path cacheDir, boolean writeCache) {
        this.stored = stored;
        this.format = format;
        this.cacheDir = cacheDir;
        this.writeCache = writeCache;
        if (writeCache && (cacheDir == null || format == WeightFormat.AUTO || format == WeightFormat.BF16)) {
            throw new IllegalArgumentException("only q8/q4 conversions can be cached, and they need a directory");
        }
    }

    /** The stored weights in {@code format}, using {@code modelDir/epic-<format>} if it exists. */
    public static WeightSource of(WeightSource stored, WeightFormat format, Path modelDir) {
        if (format == WeightFormat.AUTO) {
            return stored;
        }
        Path dir = modelDir == null ? null : modelDir.resolve(format.cacheDirName());
        return new ConvertedWeights(stored, format, dir != null && Files.isDirectory(dir) ? dir : null, false);
    }

    /** Whether this tensor is converted: 2-D linear weights except the embedding and the router gate. */
    public static boolean converts(String name) {
        return name.endsWith(".weight") && !name.equals("model.embed_tokens.weight")
                && !name.endsWith(".mlp.gate.weight");
    }

    @Override
    public Matrix matrix(String name, int rows, int cols) {
        Matrix m = stored.matrix(name, rows, cols);
        if (format == WeightFormat.AUTO || !converts(name)) {
            return m;
        }
        return switch (format) {
            case BF16 -> m.storageBytes() == 2L * rows * cols ? m : toBf16(m);
            case Q8, Q4 -> quantized(name, m);
            case AUTO -> m;
        };
    }

    private Matrix quantized(String name, Matrix m) {
        Path file = cacheDir == null ? null : cacheDir.resolve(name + ".qnt");
        try {
            if (file != null && Files.isRegularFile(file)) {
                Matrix q = Matrices.loadQuantized(file, arena);
                if (q.rows() != m.rows() || q.cols() != m.cols()) {
                    throw new IllegalArgumentException(file + ": shape [" + q.rows() + ", " + q.cols()
                            + "] does not match tensor '" + name + "' [" + m.rows() + ", " + m.cols() + "]");
                }
                mapped++;
                return q;
            }
            Matrix q = format == WeightFormat.Q8 ? Matrices.q8(m, arena) : Matrices.q4(m, arena);
            converted++;
            if (file != null && writeCache) {
                Files.createDirectories(cacheDir);
                Path tmp = cacheDir.resolve(name + ".qnt.tmp");
                Matrices.saveQuantized(q, tmp);
                Files.move(tmp, file, java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                        java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            }
            return q;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read or write quantised '" + name + "' in " + cacheDir, e);
        }
    }

    /** Round-to-nearest-even bf16 copy, off-heap. */
    private Matrix toBf16(Matrix m) {
        int rows = m.rows(), cols = m.cols();
        MemorySegment seg = arena.allocate(2L * rows * cols, 64);
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            m.row(r, row, 0);
            for (int c = 0; c < cols; c++) {
                seg.setAtIndex(U16, (long) r * cols + c, bf16(row[c]));
            }
        }
        converted++;
        return Matrices.bf16(seg, rows, cols);
    }

    static short bf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((bits >>> 16) | 0x40);
        }
        return (short) ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16);
    }

    @Override
    public float[] vector(String name, int length) {
        return stored.vector(name, length);
    }

    @Override
    public boolean contains(String name) {
        return stored.contains(name);
    }

    /** Matrices converted in this process so far / mapped from the cache directory. */
    public String summary() {
        return format.id() + ": " + converted + " converted, " + mapped + " mapped from " + cacheDir;
    }

    public void logSummary() {
        log.info("weights {}", summary());
    }
}
