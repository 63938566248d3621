package dev.epic.model;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;

/**
 * Identity of a checkpoint, so that a coordinator never mixes experts of another model: SHA-256 over
 * config.json's bytes, every tensor's (name, dtype, shape) from the safetensors headers in name order,
 * and the first {@link #SAMPLE_BYTES} of the embedding's and lm_head's data (models of one architecture,
 * as V3 and R1, share config and shapes: the weights tell them apart). Reads kilobytes, never the
 * multi-GB data, and does not depend on file names or shard boundaries, so a resharded copy of the
 * same model has the same fingerprint.
 */
public record CheckpointFingerprint(String name, String sha256) {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final long MAX_HEADER_BYTES = 100L << 20;
    /** Bytes of each sampled tensor's data in the hash. */
    static final int SAMPLE_BYTES = 4096;
    private static final List<String> SAMPLED = List.of("model.embed_tokens.weight", "lm_head.weight");

    /** Where a sampled tensor's first bytes are. */
    private record Sample(Path shard, long offset, int length) {}

    /** Short form for logs. */
    public String shortHash() {
        return sha256.substring(0, 12);
    }

    public static CheckpointFingerprint of(Path modelDir) {
        return compute(modelDir, true);
    }

    /**
     * The fingerprint as epic computed it before it sampled the weights (config and tensor headers
     * only), to recognise records written then (an {@code epic quantize} copy's source.json).
     */
    public static CheckpointFingerprint headersOnly(Path modelDir) {
        return compute(modelDir, false);
    }

    private static CheckpointFingerprint compute(Path modelDir, boolean sampleData) {
        Path config = modelDir.resolve("config.json");
        if (!Files.isRegularFile(config)) {
            throw new IllegalArgumentException("no config.json in model directory " + modelDir);
        }
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            sha.update((sampleData ? "epic-fingerprint/2\n" : "epic-fingerprint/1\n").getBytes(StandardCharsets.UTF_8));
            sha.update(Files.readAllBytes(config));
            Map<String, String> tensors = new TreeMap<>();
            List<Path> shards = new ArrayList<>();
            try (Stream<Path> files = Files.list(modelDir)) {
                files.filter(p -> p.getFileName().toString().endsWith(".safetensors")).sorted().forEach(shards::add);
            }
            if (shards.isEmpty()) {
                throw new IllegalArgumentException("no .safetensors files in model directory " + modelDir);
            }
            Map<String, Sample> samples = new TreeMap<>();
            for (Path shard : shards) {
                Header header = readHeader(shard);
                long dataStart = header.dataStart();
                header.json().properties().forEach(e -> {
                    if (!e.getKey().equals("__metadata__")) {
                        JsonNode t = e.getValue();
                        tensors.put(e.getKey(), t.path("dtype").asText() + " " + t.path("shape"));
                        JsonNode at = t.path("data_offsets");
                        if (SAMPLED.contains(e.getKey()) && at.size() == 2) {
                            long begin = at.get(0).asLong(), end = at.get(1).asLong();
                            samples.put(e.getKey(), new Sample(shard, dataStart + begin,
                                    (int) Math.max(0, Math.min(SAMPLE_BYTES, end - begin))));
                        }
                    }
                });
            }
            tensors.forEach((n, desc) -> sha.update((n + "\t" + desc + "\n").getBytes(StandardCharsets.UTF_8)));
            for (Map.Entry<String, Sample> e : sampleData ? samples.entrySet() : Map.<String, Sample>of().entrySet()) {
                sha.update((e.getKey() + "\tdata\n").getBytes(StandardCharsets.UTF_8));
                sha.update(read(e.getValue()));
            }
            String name = modelDir.toAbsolutePath().normalize().getFileName().toString();
            return new CheckpointFingerprint(name, HexFormat.of().formatHex(sha.digest()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot fingerprint " + modelDir + ": " + e.getMessage(), e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static byte[] read(Sample s) throws IOException {
        try (FileChannel ch = FileChannel.open(s.shard())) {
            if (s.offset() + s.length() > ch.size()) {
                throw new IllegalArgumentException(s.shard() + ": truncated (tensor data ends past the file)");
            }
            ByteBuffer b = ByteBuffer.allocate(s.length());
            while (b.hasRemaining() && ch.read(b, s.offset() + b.position()) > 0) {
                // read fully
            }
            return b.array();
        }
    }

    /** A shard's JSON header and where its tensor data begins. */
    private record Header(JsonNode json, long dataStart) {}

    private static Header readHeader(Path shard) throws IOException {
        try (FileChannel ch = FileChannel.open(shard)) {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            if (ch.read(len, 0) != 8) {
                throw new IllegalArgumentException(shard + ": truncated safetensors file (no 8-byte header length)");
            }
            long n = len.getLong(0);
            if (n < 2 || n > MAX_HEADER_BYTES || 8 + n > ch.size()) {
                throw new IllegalArgumentException(shard + ": invalid safetensors header length " + n);
            }
            ByteBuffer header = ByteBuffer.allocate((int) n);
            while (header.hasRemaining() && ch.read(header, 8 + header.position()) > 0) {
                // read fully
            }
            JsonNode root = JSON.readTree(header.array());
            if (root == null || !root.isObject()) {
                throw new IllegalArgumentException(shard + ": safetensors header is not a JSON object");
            }
            return new Header(root, 8 + n);
        }
    }
}
