package dev.epic.model.synth;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.kernels.Fp8E4M3;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.SafetensorsWriter;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.config.QuantizationConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.TreeMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes a random-weight checkpoint in the real Hugging Face layout: config.json, shards
 * {@code model-0000X-of-0000N.safetensors} cut at a size threshold, and
 * {@code model.safetensors.index.json}. Values are generated while streaming (the model never sits in
 * memory) from a per-tensor seed, so a tensor's contents depend only on (seed, name).
 *
 * <p>Init: weights uniform with std 1/sqrt(fan_in) (embeddings std 1) so activations stay O(1) and
 * logits spread by about one unit; norms 1; routing bias N(0, 0.01). fp8: each block (128x128 unless the config names another weight_block_size) gets a
 * random amplitude; codes are the nearest e4m3 values of uniform weights and
 * {@code weight_scale_inv = amplitude / 448}.
 */
public final class SyntheticCheckpoint {
    private static final Logger log = LoggerFactory.getLogger(SyntheticCheckpoint.class);
    private static final double SQRT3 = Math.sqrt(3);

    public enum WeightDtype { BF16, FP8 }

    /** Called after every tensor with bytes written so far and the total. */
    @FunctionalInterface
    public interface Progress {
        void update(long done, long total);
    }

    /** @param maxShardBytes a new shard starts before a tensor that would push the current one past this */
    public record Options(WeightDtype dtype, long seed, long maxShardBytes) {
        public static final long DEFAULT_SHARD_BYTES = 400L << 20;
    }

    /** What was written. */
    public record Result(ModelConfig config, List<Path> shards, long totalBytes, int tensors) {}

    private SyntheticCheckpoint() {}

    /**
     * The config as written: fp8 adds DeepSeek's quantization_config (128x128 blocks, or the blocks the
     * given config's weight_block_size names), bf16 removes it.
     */
    public static ModelConfig withDtype(ModelConfig c, WeightDtype dtype) {
        QuantizationConfig given = c.quantization();
        QuantizationConfig q = dtype == WeightDtype.FP8
                ? new QuantizationConfig("fp8", "e4m3", "dynamic", given != null ? given.blockRows() : 128,
                        given != null ? given.blockCols() : 128)
                : null;
        return new ModelConfig(c.hiddenSize(), c.intermediateSize(), c.moeIntermediateSize(), c.numHiddenLayers(),
                c.numAttentionHeads(), c.qLoraRank(), c.kvLoraRank(), c.qkNopeHeadDim(), c.qkRopeHeadDim(),
                c.vHeadDim(), c.nRoutedExperts(), c.nSharedExperts(), c.numExpertsPerTok(), c.nGroup(), c.topkGroup(),
                c.routedScalingFactor(), c.scoringFunc(), c.topkMethod(), c.normTopkProb(), c.firstKDenseReplace(),
                c.moeLayerFreq(), c.rmsNormEps(), c.ropeTheta(), c.ropeScaling(), c.maxPositionEmbeddings(),
                c.vocabSize(), c.bosTokenId(), c.eosTokenId(), c.tieWordEmbeddings(), q, c.numNextnPredictLayers());
    }

    public static Result write(ModelConfig base, Path dir, Options options, Progress progress) throws IOException {
        ModelConfig config = withDtype(base, options.dtype());
        Files.createDirectories(dir);
        ConfigWriter.write(config, dir.resolve("config.json"));

        List<SynthTensor> tensors = TensorLayout.of(config, options.dtype() == WeightDtype.FP8);
        List<List<SynthTensor>> shards = split(tensors, options.maxShardBytes());
        long total = tensors.stream().mapToLong(SynthTensor::byteSize).sum();
        log.info("writing {} tensors ({} MB) in {} shard(s) to {}", tensors.size(), total >> 20, shards.size(), dir);

        TreeMap<String, String> weightMap = new TreeMap<>();
        List<Path> files = new ArrayList<>();
        long[] done = {0};
        for (int s = 0; s < shards.size(); s++) {
            String file = String.format("model-%05d-of-%05d.safetensors", s + 1, shards.size());
            List<SafetensorsWriter.Spec> specs = new ArrayList<>();
            TreeMap<String, SynthTensor> byName = new TreeMap<>();
            for (SynthTensor t : shards.get(s)) {
                specs.add(t.spec());
                byName.put(t.name(), t);
                weightMap.put(t.name(), file);
            }
            SafetensorsWriter.write(dir.resolve(file), specs, (spec, sink) -> {
                fill(byName.get(spec.name()), options.seed(), sink);
                done[0] += spec.byteSize();
                progress.update(done[0], total);
            });
            files.add(dir.resolve(file));
        }
        writeIndex(dir.resolve(Checkpoint.INDEX_FILE), weightMap, total);
        return new Result(config, files, total, tensors.size());
    }

    private static List<List<SynthTensor>> split(List<SynthTensor> tensors, long maxShardBytes) {
        List<List<SynthTensor>> shards = new ArrayList<>();
        List<SynthTensor> current = new ArrayList<>();
        long size = 0;
        for (SynthTensor t : tensors) {
            if (!current.isEmpty() && size + t.byteSize() > maxShardBytes) {
                shards.add(current);
                current = new ArrayList<>();
                size = 0;
            }
            current.add(t);
            size += t.byteSize();
        }
        shards.add(current);
        return shards;
    }

    private static void writeIndex(Path file, TreeMap<String, String> weightMap, long total) throws IOException {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode root = json.createObjectNode();
        root.putObject("metadata").put("total_size", total);
        ObjectNode map = root.putObject("weight_map");
        weightMap.forEach(map::put);
        json.writeValue(file.toFile(), root);
    }

    /** A stream of random numbers that depends only on (seed, name). */
    private static SplittableRandom random(long seed, String name) {
        return new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ name.hashCode());
    }

    private static void fill(SynthTensor t, long seed, SafetensorsWriter.Sink sink) throws IOException {
        long n = 1;
        for (long d : t.shape()) {
            n *= d;
        }
        SplittableRandom rnd = random(seed, t.name());
        switch (t.kind()) {
            case ONES -> {
                for (long i = 0; i < n; i++) {
                    sink.putShort(bf16(1f));
                }
            }
            case BIAS -> {
                for (long i = 0; i < n; i++) {
                    sink.putFloat((float) (rnd.nextGaussian() * t.std()));
                }
            }
            case WEIGHT -> {
                double a = t.std() * SQRT3;
                for (long i = 0; i < n; i++) {
                    sink.putShort(bf16((float) rnd.nextDouble(-a, a)));
                }
            }
            case FP8_SCALES -> {
                for (float amplitude : blockAmplitudes(t.name().replace("_scale_inv", ""), seed, t.shape(), t.std())) {
                    sink.putFloat(amplitude / 448f);
                }
            }
            case FP8_WEIGHT -> {
                // weights uniform in +-amplitude of their block; in units of the block scale that is +-448
                byte[] chunk = new byte[(int) Math.min(n, 1 << 16)];
                for (long i = 0; i < n; i += chunk.length) {
                    int len = (int) Math.min(chunk.length, n - i);
                    for (int j = 0; j < len; j++) {
                        chunk[j] = (byte) Fp8E4M3.encode((float) rnd.nextDouble(-448, 448));
                    }
                    sink.putBytes(chunk, 0, len);
                }
            }
        }
    }

    /** One amplitude per block: the std-matched bound times a random factor in [0.5, 1.5). */
    private static float[] blockAmplitudes(String weightName, long seed, long[] scaleShape, double std) {
        SplittableRandom rnd = random(seed, weightName + "_scale_inv");
        float[] a = new float[(int) (scaleShape[0] * scaleShape[1])];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) (std * SQRT3 * rnd.nextDouble(0.5, 1.5));
        }
        return a;
    }

    /** float -> bf16 with round-to-nearest-even. */
    static short bf16(float v) {
        int bits = Float.floatToRawIntBits(v);
        bits += 0x7fff + ((bits >>> 16) & 1);
        return (short) (bits >>> 16);
    }
}
