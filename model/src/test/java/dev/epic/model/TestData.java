package dev.epic.model;

import java.nio.file.Files;
import java.nio.file.Path;

/** Locates the repository's testdata/ (surefire sets epic.testdata). */
public final class TestData {
    private TestData() {}

    public static Path dir() {
        String p = System.getProperty("epic.testdata");
        Path dir = p != null ? Path.of(p) : Path.of("..", "testdata");
        if (!Files.isDirectory(dir)) {
            throw new IllegalStateException("testdata not found at " + dir.toAbsolutePath()
                    + " (set -Depic.testdata)");
        }
        return dir;
    }

    public static Path model(String name) {
        return dir().resolve(name);
    }
}
