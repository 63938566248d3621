package dev.epic.model.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.kernels.Matrices;
import dev.epic.kernels.Matrix;
import dev.epic.model.WeightSource;
import dev.epic.model.config.ModelConfig;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A Hugging Face checkpoint directory: {@code config.json} plus either
 * {@code model.safetensors.index.json} (weight_map: tensor name -> shard file) or one
 * {@code model.safetensors}. Shards are memory-mapped lazily on first use, so a process that only
 * asks for some layers or experts only maps the shards holding them. fp8 weights are paired with
 * their {@code <name>_scale_inv}, which may sit in another shard. Tensors of the multi-token
 * prediction layer (index {@code num_hidden_layers}) are recognised and never loaded.
 */
public final class Checkpoint implements WeightSource, AutoCloseable {
    public static final String INDEX_FILE = "model.safetensors.index.json";
    public static final String SINGLE_FILE = "model.safetensors";
    private static final Logger log = LoggerFactory.getLogger(Checkpoint.class);
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern LAYER = Pattern.compile("^model\\.layers\\.(\\d+)\\.");
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private final Path dir;
    private final ModelConfig config;
    /** tensor name -> shard file name (sorted for stable iteration). */
    private final Map<String, String> weightMap;
    private final Map<String, SafetensorsFile> shards = new ConcurrentHashMap<>();
    private final Arena arena = Arena.ofShared();

    private Checkpoint(Path dir, ModelConfig config, Map<String, String> weightMap) {
        this.dir = dir;
        this.config = config;
        this.weightMap = weightMap;
    }

    /** Opens a checkpoint directory: reads config.json and the index; maps no shard yet. */
    public static Checkpoint open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new CheckpointException("model directory not found: " + dir);
        }
        ModelConfig config = ModelConfig.load(dir.resolve(ModelConfig.FILE_NAME));
        Map<String, String> weightMap = Files.isRegularFile(dir.resolve(INDEX_FILE))
                ? readIndex(dir.resolve(INDEX_FILE))
                : singleFileMap(dir);
        for (String file : Set.copyOf(weightMap.values())) {
            if (!Files.isRegularFile(dir.resolve(file))) {
                throw new CheckpointException(dir.resolve(INDEX_FILE) + " names shard '" + file
                        + "' but " + dir.resolve(file) + " does not exist");
            }
        }
        Checkpoint c = new Checkpoint(dir, config, weightMap);
        long mtp = weightMap.keySet().stream().filter(c::isMtpTensor).count();
        log.info("checkpoint {}: {} tensors in {} file(s){}", dir, weightMap.size(),
                Set.copyOf(weightMap.values()).size(), mtp > 0 ? ", " + mtp + " of them the MTP layer's (read only to draft with it)" : "");
        return c;
    }

    private static Map<String, String> readIndex(Path index) {
        JsonNode root;
        try {
            root = JSON.readTree(index.toFile());
        } catch (IOException e) {
            throw new CheckpointException("cannot parse " + index + ": " + e.getMessage(), e);
        }
        JsonNode map = root == null ? null : root.get("weight_map");
        if (map == null || !map.isObject()) {
            throw new CheckpointException(index + ": missing 'weight_map' object");
        }
        Map<String, String> out = new TreeMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = map.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (!e.getValue().isTextual()) {
                throw new CheckpointException(index + ": weight_map entry '" + e.getKey() + "' is not a file name");
            }
            out.put(e.getKey(), e.getValue().textValue());
        }
        return Collections.unmodifiableMap(out);
    }

    /** Without an index the one file's header is the map; it is opened lazily like any shard later. */
    private static Map<String, String> singleFileMap(Path dir) {
        Path single = dir.resolve(SINGLE_FILE);
        if (!Files.isRegularFile(single)) {
            throw new CheckpointException(dir + ": neither " + INDEX_FILE + " nor " + SINGLE_FILE + " found");
        }
        try (Arena probe = Arena.ofConfined()) {
            Map<String, String> out = new TreeMap<>();
            for (String name : SafetensorsFile.open(single, probe).tensors().keySet()) {
                out.put(name, SINGLE_FILE);
            }
            return Collections.unmodifiableMap(out);
        }
    }

    public Path directory() {
        return dir;
    }

    public ModelConfig config() {
        return config;
    }

    /** All tensor names (including MTP tensors, which only the MTP drafter reads). */
    public Set<String> tensorNames() {
        return weightMap.keySet();
    }

    /** True for tensors of the multi-token-prediction module (layers at index >= num_hidden_layers). */
    public boolean isMtpTensor(String name) {
        Matcher m = LAYER.matcher(name);
        return m.find() && Integer.parseInt(m.group(1)) >= config.numHiddenLayers();
    }

    @Override
    public boolean contains(String name) {
        return weightMap.containsKey(name);
    }

    /** Header entry of a tensor (maps its shard if needed). */
    public TensorInfo info(String name) {
        return shardOf(name).info(name);
    }

    @Override
    public boolean sameTensor(String a, String b) {
        if (!contains(a) || !contains(b)) {
            return false;
        }
        TensorInfo x = info(a);
        TensorInfo y = info(b);
        return x.dtype() == y.dtype() && java.util.Arrays.equals(x.shape(), y.shape())
                && segment(a).mismatch(segment(b)) == -1;
    }

    /** Raw bytes of a tensor, a slice of the shard mapping (valid until {@link #close()}). */
    public MemorySegment segment(String name) {
        return shardOf(name).segment(name);
    }

    private SafetensorsFile shardOf(String name) {
        String file = weightMap.get(name);
        if (file == null) {
            throw new CheckpointException(dir + ": missing tensor '" + name + "' (not in the checkpoint's weight map)");
        }
        SafetensorsFile shard = shards.computeIfAbsent(file, f -> {
            log.debug("mapping shard {}", f);
            return SafetensorsFile.open(dir.resolve(f), arena);
        });
        if (!shard.tensors().containsKey(name)) {
            throw new CheckpointException(dir.resolve(file) + ": the index places tensor '" + name
                    + "' in this file but its header does not list it");
        }
        return shard;
    }

    /** Number of shards mapped so far (lazy loading is observable). */
    public int mappedShards() {
        return shards.size();
    }

    @Override
    public Matrix matrix(String name, int rows, int cols) {
        TensorInfo t = info(name);
        requireShape(t, new long[] {rows, cols});
        MemorySegment data = segment(name);
        return switch (t.dtype()) {
            case BF16 -> Matrices.bf16(data, rows, cols);
            case F16 -> Matrices.f16(data, rows, cols);
            case F32 -> Matrices.f32(data, rows, cols);
            case F8_E4M3 -> fp8(name, data, rows, cols);
        };
    }

    private Matrix fp8(String name, MemorySegment data, int rows, int cols) {
        String scaleName = name.endsWith(".weight") ? name + "_scale_inv" : name + ".scale_inv";
        int blockRows = config.quantization() != null ? config.quantization().blockRows() : 128;
        int blockCols = config.quantization() != null ? config.quantization().blockCols() : 128;
        if (!contains(scaleName)) {
            throw new CheckpointException(dir + ": fp8 tensor '" + name + "' has no block scales '" + scaleName + "'");
        }
        TensorInfo s = info(scaleName);
        requireDtype(s, Dtype.F32);
        requireShape(s, new long[] {Math.ceilDiv(rows, blockRows), Math.ceilDiv(cols, blockCols)});
        return Matrices.fp8Block(data, segment(scaleName), rows, cols, blockRows, blockCols);
    }

    @Override
    public float[] vector(String name, int length) {
        TensorInfo t = info(name);
        requireShape(t, new long[] {length});
        MemorySegment data = segment(name);
        float[] out = new float[length];
        for (int i = 0; i < length; i++) {
            out[i] = switch (t.dtype()) {
                case F32 -> data.getAtIndex(F32, i);
                case BF16 -> Float.intBitsToFloat((data.getAtIndex(U16, i) & 0xffff) << 16);
                case F16 -> Float.float16ToFloat(data.getAtIndex(U16, i));
                case F8_E4M3 -> throw new CheckpointException(where(name) + ": 1-D tensor stored as F8_E4M3; "
                        + "expected BF16, F16 or F32");
            };
        }
        return out;
    }

    private String where(String name) {
        return dir.resolve(weightMap.get(name)) + ": tensor '" + name + "'";
    }

    private void requireShape(TensorInfo t, long[] expected) {
        if (!Arrays.equals(t.shape(), expected)) {
            throw new CheckpointException(where(t.name()) + ": expected shape " + Arrays.toString(expected)
                    + ", found " + t.shapeString() + " (" + t.dtype() + ")");
        }
    }

    private void requireDtype(TensorInfo t, Dtype expected) {
        if (t.dtype() != expected) {
            throw new CheckpointException(where(t.name()) + ": expected dtype " + expected + ", found " + t.dtype());
        }
    }

    /** Unmaps every shard; matrices handed out before become invalid. */
    @Override
    public void close() {
        arena.close();
    }
}
