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

    @Test
    void missingConfigIsAClearError(@TempDir Path tmp) {
        var e = assertThrows(IllegalArgumentException.class, () -> CheckpointFingerprint.of(tmp));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }
}
