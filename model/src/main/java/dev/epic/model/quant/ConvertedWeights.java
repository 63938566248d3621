package dev.epic.model.quant;

import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.WeightSource;
import dev.epic.model.checkpoint.CheckpointException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
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
 *
 * <p>The copies are matched to tensors by name and shape only, so the directory records what it was
 * made from ({@value #SOURCE_FILE}): the {@link CheckpointFingerprint} and each shard's size and
 * modification time (the fingerprint covers config, tensor shapes and a sample of the weights). A directory
 * whose record does not match the checkpoint is not used: loading quantises in memory instead and logs
 * why (correct, only slower; a checkpoint copied with new timestamps costs one re-quantisation), and
 * {@code epic quantize} clears it and starts over.
 */
public final class ConvertedWeights implements WeightSource {
    private static final Logger log = LoggerFactory.getLogger(ConvertedWeights.class);
    /** The record of the checkpoint an epic-qN directory was made from. */
    public static final String SOURCE_FILE = "source.json";
    private static final ObjectMapper JSON = new ObjectMapper();
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
        if (writeCache) {
            claimCache(cacheDir);
        }
    }

    /**
     * Makes {@code cacheDir} (which is {@code <model>/epic-qN}) hold copies of this checkpoint only: a
     * directory recorded from another checkpoint, or from before the record existed, loses its .qnt files
     * first. The record is written before any copy, so an interrupted run resumes where it stopped.
     */
    private static void claimCache(Path cacheDir) {
        Path modelDir = cacheDir.toAbsolutePath().getParent();
        try {
            ObjectNode source = source(modelDir);
            if (Files.isDirectory(cacheDir) && !source.equals(recorded(cacheDir))) {
                try (Stream<Path> files = Files.list(cacheDir)) {
                    for (Path f : files.filter(ConvertedWeights::isCopy).toList()) {
                        Files.delete(f);
                    }
                }
                log.info("{}: made from another checkpoint, cleared", cacheDir);
            }
            Files.createDirectories(cacheDir);
            Path tmp = cacheDir.resolve(SOURCE_FILE + ".tmp");
            JSON.writerWithDefaultPrettyPrinter().writeValue(tmp.toFile(), source);
            Files.move(tmp, cacheDir.resolve(SOURCE_FILE), java.nio.file.StandardCopyOption.ATOMIC_MOVE,
                    java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot prepare " + cacheDir, e);
        }
    }

    private static boolean isCopy(Path f) {
        String n = f.getFileName().toString();
        return n.endsWith(".qnt") || n.endsWith(".qnt.tmp");
    }

    /** Fingerprint plus each shard's bytes and modification time: what a copy made now would be made from. */
    private static ObjectNode source(Path modelDir) throws IOException {
        ObjectNode n = JSON.createObjectNode();
        n.put("fingerprint", CheckpointFingerprint.of(modelDir).sha256());
        ObjectNode shards = n.putObject("shards");
        try (Stream<Path> files = Files.list(modelDir)) {
            for (Path f : files.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().toList()) {
                shards.put(f.getFileName().toString(), Files.size(f) + " bytes, modified "
                        + Files.getLastModifiedTime(f).toMillis());
            }
        }
        return n;
    }

    /** The record in {@code cacheDir}, or null when there is none or it cannot be read. */
    private static JsonNode recorded(Path cacheDir) {
        Path file = cacheDir.resolve(SOURCE_FILE);
        try {
            return Files.isRegularFile(file) ? JSON.readTree(file.toFile()) : null;
        } catch (IOException e) {
            return null;
        }
    }

    /** Why the copies in {@code cacheDir} cannot be used for the checkpoint in {@code modelDir}; null if they can. */
    static String staleReason(Path modelDir, Path cacheDir) {
        JsonNode recorded = recorded(cacheDir);
        if (recorded == null) {
            return "it has no readable " + SOURCE_FILE + " (written by an older epic)";
        }
        try {
            ObjectNode now = source(modelDir);
            if (recorded.equals(now)) {
                return null;
            }
            // Written before the fingerprint sampled the weights: the same shards (sizes and times) and
            // the same headers-only fingerprint are the same checkpoint.
            if (recorded.path("shards").equals(now.get("shards"))
                    && recorded.path("fingerprint").asText("").equals(CheckpointFingerprint.headersOnly(modelDir).sha256())) {
                return null;
            }
            return "it was made from another checkpoint (" + SOURCE_FILE
                    + " does not match the fingerprint or the shards' sizes and times)";
        } catch (IOException | RuntimeException e) {
            return "the checkpoint cannot be fingerprinted: " + e.getMessage();
        }
    }

    /** The stored weights in {@code format}, using {@code modelDir/epic-<format>} if it exists. */
    public static WeightSource of(WeightSource stored, WeightFormat format, Path modelDir) {
        if (format == WeightFormat.AUTO) {
            return stored;
        }
        Path dir = modelDir == null ? null : modelDir.resolve(format.cacheDirName());
        if (dir == null || !Files.isDirectory(dir)) {
            return new ConvertedWeights(stored, format, null, false);
        }
        String stale = staleReason(modelDir, dir);
        if (stale != null) {
            log.warn("not using {}: {}; quantising at load instead (run `epic quantize --model {} --format {}` to"
                    + " refresh it)", dir, stale, modelDir, format.id());
            return new ConvertedWeights(stored, format, null, false);
        }
        return new ConvertedWeights(stored, format, dir, false);
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
        if (file != null && Files.isRegularFile(file)) {
            Matrix q;
            try {
                q = Matrices.loadQuantized(file, arena);
            } catch (IOException e) {
                // A corrupt or truncated copy is bad input, not an I/O fault: one line naming the file.
                String why = e.getMessage() != null && e.getMessage().contains(file.toString()) ? e.getMessage()
                        : file + ": " + e;
                throw new CheckpointException(why + " (delete it or re-run `epic quantize`)", e);
            }
            if (q.rows() != m.rows() || q.cols() != m.cols()) {
                throw new CheckpointException(file + ": shape [" + q.rows() + ", " + q.cols()
                        + "] does not match tensor '" + name + "' [" + m.rows() + ", " + m.cols() + "]");
            }
            mapped++;
            return q;
        }
        try {
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
    public boolean sameTensor(String a, String b) {
        return stored.sameTensor(a, b); // converted alike from the same bytes
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
