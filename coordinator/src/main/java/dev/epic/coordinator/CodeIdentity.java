package dev.epic.coordinator;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HexFormat;
import java.util.List;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import java.util.stream.Stream;

/**
 * Which compiled code computes the results: a SHA-256 of the class files (names and bytes, not times)
 * of the jars or class directories holding the given classes. javac's output is the same for the same
 * sources, so every build of one commit has the same identity and a change to the math another one,
 * which a snapshot's version string does not tell apart.
 */
final class CodeIdentity {
    private CodeIdentity() {}

    /** 16 hex digits of the hash of the class files where {@code classes} were loaded from, each place once. */
    static String of(Class<?>... classes) {
        List<Path> places = new ArrayList<>();
        for (Class<?> c : classes) {
            Path p = location(c);
            if (!places.contains(p)) {
                places.add(p);
            }
        }
        return of(places);
    }

    /** 16 hex digits of the hash of the class files in {@code places} (jars or directories), in that order. */
    static String of(List<Path> places) {
        MessageDigest sha;
        try {
            sha = MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
        try {
            for (Path place : places) {
                if (Files.isDirectory(place)) {
                    digestDirectory(place, sha);
                } else {
                    digestJar(place, sha);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("reading the classes of " + places, e);
        }
        return HexFormat.of().formatHex(sha.digest(), 0, 8);
    }

    private static Path location(Class<?> c) {
        try {
            return Path.of(c.getProtectionDomain().getCodeSource().getLocation().toURI());
        } catch (URISyntaxException | NullPointerException e) {
            throw new IllegalStateException("no code location for " + c.getName(), e);
        }
    }

    private static void digestDirectory(Path dir, MessageDigest sha) throws IOException {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dir)) {
            files = new ArrayList<>(walk.filter(p -> p.toString().endsWith(".class")).toList());
        }
        Collections.sort(files);
        for (Path f : files) {
            entry(dir.relativize(f).toString().replace('\\', '/'), Files.readAllBytes(f), sha);
        }
    }

    private static void digestJar(Path jar, MessageDigest sha) throws IOException {
        try (JarFile j = new JarFile(jar.toFile())) {
            List<JarEntry> entries = new ArrayList<>(j.stream().filter(e -> e.getName().endsWith(".class")).toList());
            entries.sort(java.util.Comparator.comparing(JarEntry::getName));
            for (JarEntry e : entries) {
                try (InputStream in = j.getInputStream(e)) {
                    entry(e.getName(), in.readAllBytes(), sha);
                }
            }
        }
    }

    /** A name, its length and its bytes: no two different sets of files digest the same stream. */
    private static void entry(String name, byte[] bytes, MessageDigest sha) {
        byte[] n = name.getBytes(StandardCharsets.UTF_8);
        sha.update(java.nio.ByteBuffer.allocate(8).putInt(n.length).putInt(bytes.length).array());
        sha.update(n);
        sha.update(bytes);
    }
}
