package dev.epic.model.checkpoint;

/** The safetensors dtypes the engine reads, with their element sizes. */
public enum Dtype {
    F32(4), BF16(2), F16(2), F8_E4M3(1);

    private final int bytes;

    Dtype(int bytes) {
        this.bytes = bytes;
    }

    public int bytes() {
        return bytes;
    }

    /** The dtype for a safetensors header string, or null if the engine does not support it. */
    static Dtype fromHeader(String s) {
        for (Dtype d : values()) {
            if (d.name().equals(s)) {
                return d;
            }
        }
        return null;
    }
}
