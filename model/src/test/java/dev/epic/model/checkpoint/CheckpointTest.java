package dev.epic.model.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.Fp8E4M3;
import dev.epic.kernels.Matrix;
import dev.epic.model.TestData;
import dev.epic.model.config.ModelConfig;
import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

class CheckpointTest {
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    @Test
    void mapsShardsLazilyAndKnowsMtpTensors() {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3"))) {
            assertEquals(0, c.mappedShards());
            Matrix q = c.matrix("model.layers.0.self_attn.q_a_proj.weight", 48, 64);
            assertEquals(48, q.rows());
            assertEquals(1, c.mappedShards());
            assertTrue(c.isMtpTensor("model.layers.4.enorm.weight"));
            assertTrue(c.contains("model.layers.4.enorm.weight"));
            assertTrue(!c.isMtpTensor("model.layers.3.input_layernorm.weight"));
            assertEquals(1, c.mappedShards());
            assertEquals(64, c.vector("model.layers.4.enorm.weight", 64).length); // read when drafting with it
        }
    }

    @Test
    void fp8ScalesFromAnotherShard() {
        try (Checkpoint c = Checkpoint.open(TestData.model("tiny-v3-fp8"))) {
            String w = "model.layers.1.mlp.experts.26.gate_proj.weight";
            TensorInfo info = c.info(w);
            assertEquals(Dtype.F8_E4M3, info.dtype());
            Matrix m = c.matrix(w, 48, 160);
            assertEquals(2, c.mappedShards(), "weight and its scale_inv sit in different shards");
            MemorySegment codes = c.segment(w);
            MemorySegment scales = c.segment(w + "_scale_inv");
            float[] row = new float[160];
            m.row(5, row, 0);
            for (int col = 0; col < 160; col++) {
                float expected = Fp8E4M3.decode(codes.get(ValueLayout.JAVA_BYTE, 5L * 160 + col) & 0xff)
                        * scales.getAtIndex(F32, col / 128);
                assertEquals(expected, row[col], 0f, "column " + col);
            }
        }
    }

    // ---- broken checkpoints -------------------------------------------------------------------

    /** A one-file checkpoint with tiny-v3's config and a few tensors (bf16 matrix, f32 vector, fp8 + scales). */
    private static Path writeModel(Path dir) throws IOException {
        Files.copy(TestData.model("tiny-v3").resolve("config.json"), dir.resolve("config.json"));
        SafetensorsWriter.write(dir.resolve("model.safetensors"), List.of(
                new SafetensorsWriter.Spec("a.weight", Dtype.BF16, new long[] {4, 3}),
                new SafetensorsWriter.Spec("b.bias", Dtype.F32, new long[] {5}),
                new SafetensorsWriter.Spec("c.weight", Dtype.F8_E4M3, new long[] {4, 130}),
                new SafetensorsWriter.Spec("c.weight_scale_inv", Dtype.F32, new long[] {1, 2}),
                new SafetensorsWriter.Spec("d.weight", Dtype.F8_E4M3, new long[] {2, 2}),
                new SafetensorsWriter.Spec("d.weight_scale_inv", Dtype.BF16, new long[] {1, 1})),
                (spec, sink) -> {
                    if (spec.name().equals("c.weight_scale_inv")) { // block scales 0.5 (columns 0-127) and 3
                        for (float scale : new float[] {0.5f, 3f}) {
                            int bits = Float.floatToIntBits(scale);
                            for (int b = 0; b < 4; b++) {
                                sink.putByte((byte) (bits >>> (8 * b)));
                            }
                        }
                        return;
                    }
                    for (long i = 0; i < spec.byteSize(); i++) {
                        sink.putByte((byte) (spec.dtype() == Dtype.F8_E4M3 ? 0x38 : 0));
                    }
                });
        return dir;
    }

    private static void expect(Executable e, String... fragments) {
        CheckpointException ex = assertThrows(CheckpointException.class, e);
        for (String f : fragments) {
            assertTrue(ex.getMessage().contains(f), "message '" + ex.getMessage() + "' lacks '" + f + "'");
        }
    }

    @Test
    void singleFileReads(@TempDir Path tmp) throws IOException {
        try (Checkpoint c = Checkpoint.open(writeModel(tmp))) {
            assertEquals(5, c.vector("b.bias", 5).length);
            Matrix fp8 = c.matrix("c.weight", 4, 130);
            float[] row = new float[130];
            fp8.row(3, row, 0);
            assertEquals(1f, Fp8E4M3.decode(0x38));
            assertEquals(0.5f, row[0]); // code 0x38 times the first column block's scale
            assertEquals(0.5f, row[127]);
            assertEquals(3f, row[128]); // the second block's
        }
    }

    @Test
    void wrongShapeAndDtype(@TempDir Path tmp) throws IOException {
        try (Checkpoint c = Checkpoint.open(writeModel(tmp))) {
            expect(() -> c.matrix("a.weight", 3, 4), "a.weight", "[3, 4]", "[4, 3]", "model.safetensors");
            expect(() -> c.vector("b.bias", 6), "b.bias", "[6]", "[5]");
            expect(() -> c.matrix("d.weight", 2, 2), "d.weight_scale_inv", "F32", "BF16");
        }
    }

    @Test
    void missingTensor(@TempDir Path tmp) throws IOException {
        try (Checkpoint c = Checkpoint.open(writeModel(tmp))) {
            expect(() -> c.matrix("model.layers.0.self_attn.q_a_proj.weight", 48, 64),
                    "missing tensor", "model.layers.0.self_attn.q_a_proj.weight");
        }
    }

    @Test
    void indexNamingMissingFile(@TempDir Path tmp) throws IOException {
        writeModel(tmp);
        Files.writeString(tmp.resolve(Checkpoint.INDEX_FILE), """
                {"metadata": {}, "weight_map": {"a.weight": "model.safetensors",
                 "b.bias": "model-00002-of-00002.safetensors"}}""");
        expect(() -> Checkpoint.open(tmp), "model-00002-of-00002.safetensors", "does not exist");
    }

    @Test
    void indexPlacesTensorInWrongFile(@TempDir Path tmp) throws IOException {
        writeModel(tmp);
        Files.writeString(tmp.resolve(Checkpoint.INDEX_FILE), """
                {"metadata": {}, "weight_map": {"a.weight": "model.safetensors", "zz.weight": "model.safetensors"}}""");
        try (Checkpoint c = Checkpoint.open(tmp)) {
            expect(() -> c.matrix("zz.weight", 1, 1), "zz.weight", "header does not list");
        }
    }

    @Test
    void missingShardFiles(@TempDir Path tmp) throws IOException {
        Files.copy(TestData.model("tiny-v3").resolve("config.json"), tmp.resolve("config.json"));
        expect(() -> Checkpoint.open(tmp), Checkpoint.SINGLE_FILE, Checkpoint.INDEX_FILE);
        expect(() -> Checkpoint.open(tmp.resolve("absent")), "absent");
        expect(() -> SafetensorsFile.open(tmp.resolve("x.safetensors"), java.lang.foreign.Arena.global()),
                "x.safetensors", "not found");
    }

    @Test
    void truncatedShard(@TempDir Path tmp) throws IOException {
        Path file = writeModel(tmp).resolve("model.safetensors");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(ch.size() - 10);
        }
        expect(() -> Checkpoint.open(tmp), "model.safetensors", "past the end");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.truncate(5);
        }
        expect(() -> Checkpoint.open(tmp), "model.safetensors", "truncated");
    }

    @Test
    void headerLengthPastEnd(@TempDir Path tmp) throws IOException {
        Path file = writeModel(tmp).resolve("model.safetensors");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 1L << 40), 0);
        }
        expect(() -> Checkpoint.open(tmp), "model.safetensors", "header length");
    }

    @Test
    void badJsonHeader(@TempDir Path tmp) throws IOException {
        Path file = writeModel(tmp).resolve("model.safetensors");
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.WRITE)) {
            ch.write(java.nio.ByteBuffer.wrap("{\"a.weight\": [[[".getBytes()), 8);
        }
        expect(() -> Checkpoint.open(tmp), "model.safetensors", "bad JSON header");
    }

    @Test
    void offsetsInconsistentWithShape(@TempDir Path tmp) throws IOException {
        Files.copy(TestData.model("tiny-v3").resolve("config.json"), tmp.resolve("config.json"));
        String header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}";
        java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(8 + header.length() + 16).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(header.length()).put(header.getBytes());
        Files.write(tmp.resolve("model.safetensors"), b.array());
        expect(() -> Checkpoint.open(tmp), "'w'", "needs 16 bytes", "span 12");
    }

    @Test
    void badConfigIsReported(@TempDir Path tmp) throws IOException {
        writeModel(tmp);
        Files.writeString(tmp.resolve("config.json"), "{}");
        var e = assertThrows(dev.epic.model.config.ConfigException.class, () -> Checkpoint.open(tmp));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        assertEquals(ModelConfig.FILE_NAME, "config.json");
    }
}
