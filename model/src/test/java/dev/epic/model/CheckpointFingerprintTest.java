package dev.epic.model;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class CheckpointFingerprintTest {
    private static final Path TESTDATA = Path.of(System.getProperty("epic.testdata", "testdata"));

    @Test
    void stableAcrossCallsAndCopiesButDiffersBetweenModels(@TempDir Path tmp) throws Exception {
        CheckpointFingerprint a = CheckpointFingerprint.of(TESTDATA.resolve("tiny-v3"));
        assertEquals(a, CheckpointFingerprint.of(TESTDATA.resolve("tiny-v3")));
        assertEquals("tiny-v3", a.name());
        assertEquals(64, a.sha256().length());
        assertNotEquals(a.sha256(), CheckpointFingerprint.of(TESTDATA.resolve("tiny-v3-fp8")).sha256());

        Path copy = tmp.resolve("copy");
        Files.createDirectories(copy);
        try (var files = Files.list(TESTDATA.resolve("tiny-v3"))) {
            for (Path p : files.toList()) {
                Files.copy(p, copy.resolve(p.getFileName()));
            }
        }
        assertEquals(a.sha256(), CheckpointFingerprint.of(copy).sha256(), "same content, other directory");

        String config = Files.readString(copy.resolve("config.json"));
        Files.writeString(copy.resolve("config.json"), config.replace("\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 1e-05"),
                StandardCharsets.UTF_8);
        assertNotEquals(a.sha256(), CheckpointFingerprint.of(copy).sha256(), "config change must change the hash");
    }

    /** Same architecture, config and shapes, other weights (as V3 and R1): told apart by the sampled data. */
    @Test
    void otherWeightsOfTheSameShapesDiffer(@TempDir Path tmp) throws Exception {
        String[] hashes = new String[3];
        long[] seeds = {1, 2, 1};
        for (int i = 0; i < 3; i++) {
            Path dir = tmp.resolve("seed" + i);
            dev.epic.model.synth.SyntheticCheckpoint.write(dev.epic.model.synth.Presets.tinyV3(), dir,
                    new dev.epic.model.synth.SyntheticCheckpoint.Options(
                            dev.epic.model.synth.SyntheticCheckpoint.WeightDtype.BF16, seeds[i],
                            dev.epic.model.synth.SyntheticCheckpoint.Options.DEFAULT_SHARD_BYTES), (done, total) -> {});
            hashes[i] = CheckpointFingerprint.of(dir).sha256();
        }
        assertEquals(Files.readString(tmp.resolve("seed0/config.json")), Files.readString(tmp.resolve("seed1/config.json")));
        assertNotEquals(hashes[0], hashes[1], "other weights");
        assertEquals(hashes[0], hashes[2], "the same weights");
    }

    @Test
    void missingConfigIsAClearError(@TempDir Path tmp) {
        var e = assertThrows(IllegalArgumentException.class, () -> CheckpointFingerprint.of(tmp));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }
}
