package dev.epic.coordinator.scheduler;

import dev.epic.model.KvBlock;
import dev.epic.model.KvBlockCodec;
import dev.epic.model.KvCacheDtype;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayDeque;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The prefix cache's disk tier ({@code --prefix-cache-disk}): kept prompt blocks written to a directory,
 * so a prefix evicted from memory, or kept before a restart, is read back instead of prefilled again
 * (as DeepSeek's service keeps context on disk, and SGLang's HiCache and vLLM with LMCache do).
 *
 * <p>A block's file is named by a hash chain over the prompt: the hash of block b is SHA-256 of block
 * b-1's hash and block b's tokens, and block 0's parent is the hash of the {@link Options#identity}, which
 * names what the KV depends on (checkpoint, weight formats, wire, KV dtype, layers). A file also holds its
 * parent hash and tokens, which are checked on reading, and a checksum, so a file of another prefix, model
 * or shape, or a torn one, is a miss (and is removed), never a wrong restore.
 *
 * <p>Blocks are written by one background thread (write-through, so a restart finds them), at most
 * {@link #PENDING_BYTES} waiting; beyond that a write is skipped, the block staying in memory. A waiting
 * request's blocks are read ahead by another ({@link #readAhead}), so the engine goes on stepping the
 * batch meanwhile; what was not read ahead is read on the engine thread. The directory holds at most
 * {@link Options#capacityBytes}: least recently used files go first, and their modification times
 * carry that order across restarts.
 *
 * <p>Coordinators may share a directory (replicas on one host, or on a shared file system): a block
 * one of them wrote is found by the others, whose own index missed it (files are content-addressed,
 * written under a name of their own and renamed, and never changed). Each indexes the directory again
 * every {@link #RESCAN_WRITES} writes, so the capacity holds across them, by modification time.
 */
public final class PrefixDisk implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(PrefixDisk.class);
    private static final String SUFFIX = ".kvb";
    /** Bytes of blocks waiting to be written at most. */
    static final long PENDING_BYTES = 64L << 20;
    /** Writes between two indexings of the directory (which see the files other coordinators wrote). */
    static final int RESCAN_WRITES = 256;
    /** A temporary file older than this was left by a stop, not by another coordinator writing. */
    private static final long STALE_TEMP_MILLIS = 10 * 60_000;
    private static final String TEMP = ".tmp-" + ProcessHandle.current().pid() + "-";

    /**
     * @param dir           the directory (created if missing); blocks go in a subdirectory per identity
     * @param capacityBytes the most bytes of block files it keeps
     * @param identity      what the cached KV depends on besides the tokens, null until the serving command
     *                      names it ({@link #identity})
     */
    public record Options(Path dir, long capacityBytes, String identity) {
        public Options {
            java.util.Objects.requireNonNull(dir, "dir");
            if (capacityBytes < 1) {
                throw new IllegalArgumentException("--prefix-cache-disk-mb must be >= 1, got " + capacityBytes + " bytes");
            }
        }

        public Options identifiedBy(String identity) {
            return new Options(dir, capacityBytes, identity);
        }
    }

    private record Pending(String name, byte[] label, KvBlock block, long bytes) {}

    private final Path dir;
    private final long capacity;
    private final int layers;
    private final int rank;
    private final int rope;
    private final KvCacheDtype dtype;
    private final byte[] root;
    private final long blockFileBytes;
    private final Object lock = new Object();
    private final LinkedHashMap<String, Long> files = new LinkedHashMap<>(16, 0.75f, true); // LRU first; guarded by lock
    private final ArrayDeque<Pending> pending = new ArrayDeque<>(); // guarded by lock
    private long pendingBytes; // guarded by lock
    private long bytes; // guarded by lock
    private boolean closed; // guarded by lock
    private final Thread writer;
    private final AtomicLong temps = new AtomicLong();
    private int writesSinceIndex; // writer thread
    private final java.util.concurrent.ExecutorService reader = java.util.concurrent.Executors.newSingleThreadExecutor(
            Thread.ofPlatform().name("epic-prefix-disk-read").daemon(true).factory());
    /** Milliseconds each block read waits first: for tests that need a slow disk. */
    volatile long readDelayMillis;
    private final AtomicLong readBlocks = new AtomicLong();
    private final AtomicLong writtenBlocks = new AtomicLong();
    private final AtomicLong skippedWrites = new AtomicLong();

    private PrefixDisk(Path dir, long capacity, byte[] root, int layers, int rank, int rope, KvCacheDtype dtype) {
        this.dir = dir;
        this.capacity = capacity;
        this.root = root;
        this.layers = layers;
        this.rank = rank;
        this.rope = rope;
        this.dtype = dtype;
        this.blockFileBytes = (long) layers * PrefixCache.BLOCK * (rank + rope) * dtype.bytes();
        this.writer = Thread.ofPlatform().name("epic-prefix-disk").daemon(true).unstarted(this::writeLoop);
    }

    /**
     * Opens the tier for caches of {@code layers} layers of {@code rank} latents and {@code rope} rope keys
     * stored in {@code dtype}: indexes the files a previous run left (oldest use first) and removes what
     * is past the capacity or half written.
     */
    public static PrefixDisk open(Options o, int layers, int rank, int rope, KvCacheDtype dtype) {
        if (o.identity() == null) {
            throw new IllegalArgumentException("the prefix cache's disk tier needs the identity of the model's KV");
        }
        String full = o.identity() + " kv=" + dtype.id() + " layers=" + layers + " rank=" + rank + " rope=" + rope
                + " block=" + PrefixCache.BLOCK;
        byte[] root = sha256(full.getBytes(StandardCharsets.UTF_8));
        Path dir = o.dir().resolve(HexFormat.of().formatHex(root, 0, 16));
        PrefixDisk disk = new PrefixDisk(dir, o.capacityBytes(), root, layers, rank, rope, dtype);
        try {
            Files.createDirectories(dir);
            Path about = dir.resolve("identity.txt");
            if (!Files.exists(about)) {
                Files.writeString(about, full + "\n");
            }
            disk.index();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot use " + o.dir() + " for the prefix cache (--prefix-cache-disk): "
                    + e.getMessage(), e);
        }
        disk.writer.start();
        log.info("prefix cache disk tier: {} ({} blocks, {} MiB of at most {} MiB)", dir, disk.files.size(),
                mib(disk.bytes), mib(o.capacityBytes()));
        return disk;
    }

    /**
     * (Re)builds the index from the directory, least recently used first by modification time, and removes
     * what is past the capacity and the temporary files a stop left.
     */
    void index() throws IOException {
        record Found(Path path, long size, FileTime used) {}
        List<Found> found;
        long stale = System.currentTimeMillis() - STALE_TEMP_MILLIS;
        try (Stream<Path> s = Files.list(dir)) {
            found = s.filter(p -> {
                String n = p.getFileName().toString();
                if (n.contains(".tmp-")) { // being written (here or by another coordinator), or cut short by a stop
                    try {
                        if (Files.getLastModifiedTime(p).toMillis() < stale) {
                            delete(p);
                        }
                    } catch (IOException e) {
                        // gone meanwhile
                    }
                    return false;
                }
                return n.endsWith(SUFFIX);
            }).map(p -> {
                try {
                    return new Found(p, Files.size(p), Files.getLastModifiedTime(p));
                } catch (IOException e) {
                    return null;
                }
            }).filter(java.util.Objects::nonNull).sorted(Comparator.comparing(Found::used)).toList();
        }
        synchronized (lock) {
            files.clear();
            bytes = 0;
            for (Found f : found) {
                files.put(f.path().getFileName().toString(), f.size());
                bytes += f.size();
            }
            evictOverCapacity();
        }
    }

    /**
     * Whether file {@code name} is on disk: in the index, or written since by another coordinator (then it
     * joins the index).
     */
    private boolean known(String name) {
        synchronized (lock) {
            if (files.containsKey(name)) {
                return true;
            }
        }
        Path p = dir.resolve(name);
        try {
            long size = Files.size(p);
            synchronized (lock) {
                if (files.putIfAbsent(name, size) == null) {
                    bytes += size;
                }
            }
            return true;
        } catch (IOException e) {
            return false; // not there
        }
    }

    /** The parent hash of a prompt's first block. */
    byte[] root() {
        return root.clone();
    }

    /** The hash of the block holding {@code tokens} after the prefix whose last block hashed to {@code parent}. */
    static byte[] next(byte[] parent, int[] tokens) {
        return sha256(label(parent, tokens));
    }

    /** Whether the block hashed {@code hash} is on disk now (its use not counted). */
    boolean has(byte[] hash) {
        return known(name(hash));
    }

    /**
     * Reads blocks i = 0, 1, ... (block i holds {@code tokens.get(i)} after the prefix hashed
     * {@code parents.get(i)}, and hashes to {@code hashes.get(i)}) on the reading thread, up to the first
     * missing one: the blocks read, by {@link #name} of their hash.
     */
    java.util.concurrent.CompletableFuture<Map<String, KvBlock>> readAhead(List<byte[]> hashes, List<byte[]> parents,
            List<int[]> tokens) {
        if (reader.isShutdown()) {
            return java.util.concurrent.CompletableFuture.completedFuture(Map.of());
        }
        return java.util.concurrent.CompletableFuture.supplyAsync(() -> {
            Map<String, KvBlock> read = new java.util.HashMap<>();
            for (int i = 0; i < hashes.size(); i++) {
                KvBlock b = load(hashes.get(i), parents.get(i), tokens.get(i));
                if (b == null) {
                    break;
                }
                read.put(name(hashes.get(i)), b);
            }
            return read;
        }, reader);
    }

    /** What a block's file is labelled with: its parent's hash and its tokens. */
    private static byte[] label(byte[] parent, int[] tokens) {
        ByteBuffer b = ByteBuffer.allocate(parent.length + tokens.length * Integer.BYTES).order(ByteOrder.LITTLE_ENDIAN);
        b.put(parent);
        b.asIntBuffer().put(tokens);
        return b.array();
    }

    /** A block's file name, and its key among those read ahead. */
    static String name(byte[] hash) {
        return HexFormat.of().formatHex(hash) + SUFFIX;
    }

    /**
     * The block of {@code tokens} after {@code parent}'s prefix, read from disk, or null when it is not
     * there (or its file is bad: then it is removed). {@code hash} is {@link #next}{@code (parent, tokens)}.
     */
    KvBlock load(byte[] hash, byte[] parent, int[] tokens) {
        String name = name(hash);
        if (!known(name)) {
            return null;
        }
        synchronized (lock) {
            files.get(name); // marks it used
        }
        Path path = dir.resolve(name);
        try {
            if (readDelayMillis > 0) {
                Thread.sleep(readDelayMillis);
            }
            KvBlock block = KvBlockCodec.decode(Files.readAllBytes(path), label(parent, tokens), layers,
                    PrefixCache.BLOCK, rank, rope, dtype);
            touch(path);
            readBlocks.incrementAndGet();
            return block;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return null;
        } catch (NoSuchFileException e) {
            forget(name);
        } catch (IOException | KvBlockCodec.BadBlockException e) {
            log.warn("prefix cache file {} cannot be used ({}): removed", path, e.getMessage());
            forget(name);
            delete(path);
        }
        return null;
    }

    /** Queues {@code block} (the tokens after {@code parent}'s prefix) to be written, unless it is on disk already. */
    void save(byte[] hash, byte[] parent, int[] tokens, KvBlock block) {
        String name = name(hash);
        synchronized (lock) {
            if (closed || files.containsKey(name)) {
                return;
            }
            if (pendingBytes + blockFileBytes > PENDING_BYTES) {
                skippedWrites.incrementAndGet(); // the disk is behind: this block stays in memory only
                return;
            }
            pending.add(new Pending(name, label(parent, tokens), block, blockFileBytes));
            pendingBytes += blockFileBytes;
            lock.notifyAll();
        }
    }

    private void writeLoop() {
        while (true) {
            Pending p;
            synchronized (lock) {
                while (pending.isEmpty() && !closed) {
                    try {
                        lock.wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                if (pending.isEmpty()) {
                    lock.notifyAll();
                    return;
                }
                p = pending.peek();
            }
            try {
                write(p);
            } catch (IOException | RuntimeException e) {
                log.warn("prefix cache block {} not written to {}: {}", p.name(), dir, e.toString());
            } finally {
                synchronized (lock) {
                    pending.poll();
                    pendingBytes -= p.bytes();
                    lock.notifyAll();
                }
            }
        }
    }

    private void write(Pending p) throws IOException {
        if (known(p.name())) { // written before, here or by another coordinator
            return;
        }
        byte[] data = KvBlockCodec.encode(p.block(), p.label());
        Path target = dir.resolve(p.name());
        Path tmp = dir.resolve(p.name() + TEMP + temps.incrementAndGet());
        Files.write(tmp, data);
        try {
            Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
        } catch (AtomicMoveNotSupportedException e) {
            Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING);
        }
        synchronized (lock) {
            Long old = files.put(p.name(), (long) data.length);
            bytes += data.length - (old == null ? 0 : old);
            evictOverCapacity();
        }
        writtenBlocks.incrementAndGet();
        if (++writesSinceIndex >= RESCAN_WRITES) { // what other coordinators wrote counts in the capacity too
            writesSinceIndex = 0;
            try {
                index();
            } catch (IOException e) {
                log.warn("cannot index {} again: {}", dir, e.toString());
            }
        }
    }

    /** Removes least recently used files until the rest fit; under the lock. */
    private void evictOverCapacity() {
        for (Iterator<Map.Entry<String, Long>> it = files.entrySet().iterator(); bytes > capacity && it.hasNext(); ) {
            Map.Entry<String, Long> e = it.next();
            it.remove();
            bytes -= e.getValue();
            delete(dir.resolve(e.getKey()));
        }
    }

    private void forget(String name) {
        synchronized (lock) {
            Long size = files.remove(name);
            if (size != null) {
                bytes -= size;
            }
        }
    }

    private static void touch(Path p) {
        try {
            Files.setLastModifiedTime(p, FileTime.fromMillis(System.currentTimeMillis()));
        } catch (IOException e) {
            // only the order of eviction after a restart depends on it
        }
    }

    private static void delete(Path p) {
        try {
            Files.deleteIfExists(p);
        } catch (IOException e) {
            log.warn("cannot remove {}: {}", p, e.toString());
        }
    }

    /** Waits until every queued block is written (or skipped on an error). */
    void flush() throws InterruptedException {
        synchronized (lock) {
            while (!pending.isEmpty() && writer.isAlive()) {
                lock.wait(100);
            }
        }
    }

    /** Bytes of block files on disk now. */
    public long storedBytes() {
        synchronized (lock) {
            return bytes;
        }
    }

    /** Blocks read back from disk so far. */
    public long readBlocks() {
        return readBlocks.get();
    }

    /** Blocks written so far. */
    public long writtenBlocks() {
        return writtenBlocks.get();
    }

    /** Writes skipped because the disk was behind. */
    public long skippedWrites() {
        return skippedWrites.get();
    }

    /** The directory of this model's blocks. */
    public Path directory() {
        return dir;
    }

    /** Writes what is queued, then stops the writer. */
    @Override
    public void close() {
        reader.shutdownNow();
        synchronized (lock) {
            closed = true;
            lock.notifyAll();
        }
        try {
            writer.join(60_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    private static byte[] sha256(byte[] data) {
        try {
            return MessageDigest.getInstance("SHA-256").digest(data);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    private static long mib(long bytes) {
        return Math.ceilDiv(bytes, 1L << 20);
    }
}
