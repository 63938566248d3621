package dev.epic.model;

import dev.epic.model.config.ModelConfig;
import java.util.Locale;

/**
 * How a KV cache stores each position's latent and rotated key. FP32 holds exactly what attention
 * computed (the verifier). BF16 rounds them to nearest even on write and widens them in registers on
 * read, as DeepSeek's reference keeps its caches in its default bf16 dtype: half the memory per
 * position and half the bytes the latent passes read, at an error of the order of bf16's 2^-9.
 */
public enum KvCacheDtype {
    FP32(Float.BYTES),
    BF16(Short.BYTES);

    private final int bytes;

    KvCacheDtype(int bytes) {
        this.bytes = bytes;
    }

    /** Bytes of one stored value. */
    public int bytes() {
        return bytes;
    }

    /** Bytes one position takes in every layer: latent and rope key. */
    public long bytesPerPosition(ModelConfig c) {
        return bytesPerPosition(c, c.numHiddenLayers());
    }

    /** Bytes one position takes in {@code layers} layers (the decoder's, with the MTP layer's when it drafts). */
    public long bytesPerPosition(ModelConfig c, int layers) {
        return (long) layers * (c.kvLoraRank() + c.qkRopeHeadDim()) * bytes;
    }

    /** The name on the command line and in worker announcements: "fp32" or "bf16". */
    public String id() {
        return name().toLowerCase(Locale.ROOT);
    }

    /** Parses --kv-cache-dtype: fp32, bf16, or auto (fp32, the verifier's precision). */
    public static KvCacheDtype parse(String s) {
        return switch (s == null ? "" : s.toLowerCase(Locale.ROOT)) {
            case "auto", "fp32", "float32" -> FP32;
            case "bf16", "bfloat16" -> BF16;
            default -> throw new IllegalArgumentException("--kv-cache-dtype must be auto, fp32 or bf16, got '" + s + "'");
        };
    }
}
