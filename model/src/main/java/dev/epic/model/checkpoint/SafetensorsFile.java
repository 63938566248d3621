package dev.epic.model.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One memory-mapped {@code .safetensors} file: an 8-byte little-endian header length, a JSON header
 * {name: {dtype, shape, data_offsets}}, then the tensor bytes. The whole file is mapped through FFM
 * (no 2 GB limit, nothing copied); tensors are slices of that mapping. Every header entry is checked
 * against the file size when the file is opened.
 */
public final class SafetensorsFile {
    private static final ObjectMapper JSON = new ObjectMapper();
    /** Real headers are a few MB at most; anything larger is corruption, not a header. */
    private static final long MAX_HEADER_BYTES = 100L << 20;

    private final Path path;
    private final MemorySegment data;
    private final Map<String, TensorInfo> tensors;

    private SafetensorsFile(Path path, MemorySegment data, Map<String, TensorInfo> tensors) {
        this.path = path;
        this.data = data;
        this.tensors = tensors;
    }

    /** Maps the file into {@code arena} (it stays mapped until the arena closes) and validates its header. */
    public static SafetensorsFile open(Path path, Arena arena) {
        if (!Files.isRegularFile(path)) {
            throw new CheckpointException("safetensors file not found: " + path);
        }
        MemorySegment file;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) {
                throw new CheckpointException(path + ": truncated safetensors file (" + size
                        + " bytes, less than the 8-byte header length)");
            }
            file = ch.map(FileChannel.MapMode.READ_ONLY, 0, size, arena);
        } catch (IOException e) {
            throw new CheckpointException("cannot map " + path + ": " + e.getMessage(), e);
        }
        long headerLen = file.get(ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), 0);
        if (headerLen < 2 || headerLen > MAX_HEADER_BYTES || 8 + headerLen > file.byteSize()) {
            throw new CheckpointException(path + ": header length " + headerLen + " is invalid for a file of "
                    + file.byteSize() + " bytes (truncated or not a safetensors file)");
        }
        byte[] headerBytes = file.asSlice(8, headerLen).toArray(ValueLayout.JAVA_BYTE);
        MemorySegment data = file.asSlice(8 + headerLen);
        return new SafetensorsFile(path, data, parseHeader(path, new String(headerBytes, StandardCharsets.UTF_8),
                data.byteSize()));
    }

    private static Map<String, TensorInfo> parseHeader(Path path, String header, long dataBytes) {
        JsonNode root;
        try {
            root = JSON.readTree(header);
        } catch (JsonProcessingException e) {
            throw new CheckpointException(path + ": bad JSON header: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(path + ": bad JSON header: expected an object");
        }
        Map<String, TensorInfo> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.properties().iterator(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            if (e.getKey().equals("__metadata__")) {
                continue;
            }
            out.put(e.getKey(), parseEntry(path, e.getKey(), e.getValue(), dataBytes));
        }
        return Collections.unmodifiableMap(out);
    }

    private static TensorInfo parseEntry(Path path, String name, JsonNode e, long dataBytes) {
        String where = path + ": tensor '" + name + "'";
        JsonNode dtypeNode = e.get("dtype");
        JsonNode shapeNode = e.get("shape");
        JsonNode offsets = e.get("data_offsets");
        if (dtypeNode == null || shapeNode == null || !shapeNode.isArray() || offsets == null || !offsets.isArray()
                || offsets.size() != 2) {
            throw new CheckpointException(where + ": header entry needs dtype, shape and data_offsets [begin, end]");
        }
        Dtype dtype = Dtype.fromHeader(dtypeNode.asText());
        if (dtype == null) {
            throw new CheckpointException(where + ": unsupported dtype " + dtypeNode.asText()
                    + " (expected one of BF16, F16, F32, F8_E4M3)");
        }
        long[] shape = new long[shapeNode.size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = shapeNode.get(i).asLong(-1);
            if (shape[i] < 0) {
                throw new CheckpointException(where + ": bad shape " + shapeNode);
            }
        }
        long begin = offsets.get(0).asLong(-1);
        long end = offsets.get(1).asLong(-1);
        if (begin < 0 || end < begin) {
            throw new CheckpointException(where + ": bad data_offsets " + offsets);
        }
        if (end > dataBytes) {
            throw new CheckpointException(where + ": data_offsets " + offsets + " run past the end of the file (data "
                    + "section has " + dataBytes + " bytes; truncated file?)");
        }
        TensorInfo info = new TensorInfo(name, dtype, shape, begin, end);
        long expected = info.elements() * dtype.bytes();
        if (info.byteSize() != expected) {
            throw new CheckpointException(where + ": " + dtype + " " + info.shapeString() + " needs " + expected
                    + " bytes but data_offsets span " + info.byteSize());
        }
        return info;
    }

    public Path path() {
        return path;
    }

    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public TensorInfo info(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new CheckpointException(path + ": tensor '" + name + "' not in this file's header");
        }
        return t;
    }

    /** The tensor's bytes: a slice of the mapping, valid while the arena is open. */
    public MemorySegment segment(String name) {
        TensorInfo t = info(name);
        return data.asSlice(t.begin(), t.byteSize());
    }
}
