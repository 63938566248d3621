package dev.epic.model.checkpoint;

import java.util.Arrays;

/** One tensor's header entry: dtype, shape and byte range [begin, end) relative to the data section. */
public record TensorInfo(String name, Dtype dtype, long[] shape, long begin, long end) {
    public long elements() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    public long byteSize() {
        return end - begin;
    }

    public String shapeString() {
        return Arrays.toString(shape);
    }
}
