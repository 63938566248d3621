package dev.epic.kernels.cuda;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Compiled kernel images on disk, so that a worker compiles them once per source, architecture and
 * compiler (NVRTC takes 10–20 s for all of them) instead of at every start. The key is a hash of all
 * three; an entry is written whole (a temporary file moved into place) and is only a shortcut: any
 * failure to read or write one just means compiling.
 */
final class KernelCache {
    private static final Logger log = LoggerFactory.getLogger(KernelCache.class);
    private final Path dir;

    KernelCache(Path dir) {
        this.dir = dir;
    }

    /** {@code $EPIC_CUDA_CACHE}, else ~/.cache/epic/cuda. */
    static KernelCache standard() {
        String env = System.getenv("EPIC_CUDA_CACHE");
        return new KernelCache(env != null && !env.isBlank() ? Path.of(env)
                : Path.of(System.getProperty("user.home"), ".cache", "epic", "cuda"));
    }

    static String key(String source, String arch, String compiler) {
        try {
            MessageDigest sha = MessageDigest.getInstance("SHA-256");
            for (String part : new String[] {source, arch, compiler}) {
                sha.update(part.getBytes(StandardCharsets.UTF_8));
                sha.update((byte) 0);
            }
            return HexFormat.of().formatHex(sha.digest());
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The image stored under {@code key}, or null. */
    byte[] get(String key) {
        Path file = dir.resolve(key + ".cubin");
        try {
            return Files.isRegularFile(file) ? Files.readAllBytes(file) : null;
        } catch (IOException e) {
            log.debug("kernel cache entry {} unreadable: {}", file, e.toString());
            return null;
        }
    }

    void put(String key, byte[] image) {
        try {
            Files.createDirectories(dir);
            Path tmp = Files.createTempFile(dir, key, ".tmp");
            Files.write(tmp, image);
            Files.move(tmp, dir.resolve(key + ".cubin"), StandardCopyOption.ATOMIC_MOVE,
                    StandardCopyOption.REPLACE_EXISTING);
        } catch (IOException | UnsupportedOperationException e) {
            log.debug("kernel cache {} not written: {}", dir, e.toString());
        }
    }

    void remove(String key) {
        try {
            Files.deleteIfExists(dir.resolve(key + ".cubin"));
        } catch (IOException e) {
            log.debug("kernel cache entry {} not removed: {}", key, e.toString());
        }
    }
}
