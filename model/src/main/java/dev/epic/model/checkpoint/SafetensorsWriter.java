package dev.epic.model.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * Streams one {@code .safetensors} file: the header is computed from the tensor specs up front, then
 * each tensor's bytes are produced on demand through a {@link Sink}, so nothing larger than the
 * write buffer is held in memory. Tensors are laid out like PyTorch's writer does (dtype size
 * descending, then name), which keeps every tensor naturally aligned.
 */
public final class SafetensorsWriter {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** A tensor to write. */
    public record Spec(String name, Dtype dtype, long[] shape) {
        public long byteSize() {
            long n = dtype.bytes();
            for (long d : shape) {
                n *= d;
            }
            return n;
        }
    }

    /** Produces the bytes of one tensor into the sink (exactly {@code spec.byteSize()} bytes). */
    @FunctionalInterface
    public interface Producer {
        void write(Spec spec, Sink sink) throws IOException;
    }

    /** Little-endian output with a bounded buffer. */
    public static final class Sink {
        private final FileChannel ch;
        private final ByteBuffer buf = ByteBuffer.allocateDirect(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
        private long written;

        private Sink(FileChannel ch) {
            this.ch = ch;
        }

        private void room(int n) throws IOException {
            if (buf.remaining() < n) {
                flush();
            }
        }

        public void putLong(long v) throws IOException {
            room(8);
            buf.putLong(v);
            written += 8;
        }

        public void putFloat(float v) throws IOException {
            room(4);
            buf.putFloat(v);
            written += 4;
        }

        public void putShort(short v) throws IOException {
            room(2);
            buf.putShort(v);
            written += 2;
        }

        public void putByte(byte v) throws IOException {
            room(1);
            buf.put(v);
            written += 1;
        }

        public void putBytes(byte[] b) throws IOException {
            putBytes(b, 0, b.length);
        }

        public void putBytes(byte[] b, int from, int length) throws IOException {
            for (int off = from; off < from + length; ) {
                room(1);
                int n = Math.min(buf.remaining(), from + length - off);
                buf.put(b, off, n);
                off += n;
                written += n;
            }
        }

        void flush() throws IOException {
            buf.flip();
            while (buf.hasRemaining()) {
                ch.write(buf);
            }
            buf.clear();
        }
    }

    private SafetensorsWriter() {}

    /** The order tensors take inside a file. */
    public static final Comparator<Spec> FILE_ORDER =
            Comparator.comparingInt((Spec s) -> -s.dtype().bytes()).thenComparing(Spec::name);

    /** Writes {@code specs} (reordered into {@link #FILE_ORDER}) to {@code file}; returns the data bytes written. */
    public static long write(Path file, List<Spec> specs, Producer producer) throws IOException {
        List<Spec> ordered = new ArrayList<>(specs);
        ordered.sort(FILE_ORDER);
        ObjectNode header = JSON.createObjectNode();
        header.putObject("__metadata__").put("format", "pt");
        long offset = 0;
        for (Spec s : ordered) {
            ObjectNode e = header.putObject(s.name());
            e.put("dtype", s.dtype().name());
            ArrayNode shape = e.putArray("shape");
            for (long d : s.shape()) {
                shape.add(d);
            }
            e.putArray("data_offsets").add(offset).add(offset + s.byteSize());
            offset += s.byteSize();
        }
        byte[] json = JSON.writeValueAsBytes(header);
        int padded = (json.length + 7) / 8 * 8; // pad with spaces so the data section starts 8-aligned
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            Sink sink = new Sink(ch);
            sink.putLong(padded);
            sink.putBytes(json);
            for (int i = json.length; i < padded; i++) {
                sink.putByte((byte) ' ');
            }
            for (Spec s : ordered) {
                long before = sink.written;
                producer.write(s, sink);
                if (sink.written - before != s.byteSize()) {
                    throw new IllegalStateException("producer wrote " + (sink.written - before) + " bytes for "
                            + s.name() + ", expected " + s.byteSize());
                }
            }
            sink.flush();
        }
        return offset;
    }
}
