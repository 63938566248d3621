package dev.epic.coordinator;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.OutputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The code's identity follows the class files' names and bytes, in a jar or a directory, not their times. */
class CodeIdentityTest {
    @TempDir
    Path tmp;

    @Test
    void theClassFilesContentNamesTheCode() throws Exception {
        Path dir = tmp.resolve("classes");
        Files.createDirectories(dir.resolve("a/b"));
        Files.write(dir.resolve("a/b/One.class"), new byte[] {1, 2, 3});
        Files.write(dir.resolve("a/Two.class"), new byte[] {4, 5});
        String id = CodeIdentity.of(List.of(dir));
        assertTrue(id.matches("[0-9a-f]{16}"), id);

        Files.setLastModifiedTime(dir.resolve("a/Two.class"), FileTime.fromMillis(0));
        Files.writeString(dir.resolve("a/notes.txt"), "not code");
        assertEquals(id, CodeIdentity.of(List.of(dir)), "times and other files do not count");

        Path jar = tmp.resolve("classes.jar");
        try (JarOutputStream out = new JarOutputStream(Files.newOutputStream(jar))) {
            put(out, "a/Two.class", new byte[] {4, 5}); // another order, and a time of its own
            put(out, "a/b/One.class", new byte[] {1, 2, 3});
            put(out, "META-INF/x.properties", new byte[] {9});
        }
        assertEquals(id, CodeIdentity.of(List.of(jar)), "the same classes in a jar");

        Files.write(dir.resolve("a/Two.class"), new byte[] {4, 6});
        assertNotEquals(id, CodeIdentity.of(List.of(dir)), "a changed byte");
        Files.write(dir.resolve("a/Two.class"), new byte[] {4, 5});
        Files.move(dir.resolve("a/b/One.class"), dir.resolve("a/b/Uno.class"));
        assertNotEquals(id, CodeIdentity.of(List.of(dir)), "a renamed class");
        Files.move(dir.resolve("a/b/Uno.class"), dir.resolve("a/b/One.class"));
        assertEquals(id, CodeIdentity.of(List.of(dir)));
        // Bytes moved from one file's end to the next one's start are another set of files.
        Files.write(dir.resolve("a/b/One.class"), new byte[] {1, 2});
        Files.write(dir.resolve("a/Two.class"), new byte[] {3, 4, 5});
        assertNotEquals(id, CodeIdentity.of(List.of(dir)), "a boundary moved");
    }

    @Test
    void theServingCodeHasAnIdentity() {
        String id = CodeIdentity.of(dev.epic.kernels.VectorOps.class, dev.epic.model.Transformer.class, ServedModel.class);
        assertTrue(id.matches("[0-9a-f]{16}"), id);
        assertEquals(id, CodeIdentity.of(dev.epic.kernels.VectorOps.class, dev.epic.model.Transformer.class,
                ServedModel.class, CodeIdentity.class), "each place once");
    }

    private static void put(JarOutputStream out, String name, byte[] bytes) throws Exception {
        JarEntry e = new JarEntry(name);
        e.setTime(123_456_000L);
        out.putNextEntry(e);
        OutputStream o = out;
        o.write(bytes);
        out.closeEntry();
    }
}
