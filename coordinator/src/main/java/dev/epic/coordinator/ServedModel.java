package dev.epic.coordinator;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.Transformer;
import dev.epic.model.WeightSource;
import dev.epic.coordinator.attention.RemoteAttention;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.moe.RoutedExperts;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import dev.epic.text.chat.ChatTemplate;
import dev.epic.text.tokenizer.Tokenizer;
import dev.epic.text.tokenizer.TokenizerConfig;
import java.nio.file.Path;
import java.util.stream.IntStream;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Everything the front door needs about the model it serves: the transformer (dense layers here,
 * attention here or on attention workers ({@code attention}, null when here), routed experts
 * wherever {@code experts} puts them), its tokenizer and chat template,
 * identity, the context limit requests are validated against, and the weight bytes one decoded
 * token reads across the cluster (for the memory roofline of {@code epic bench --target}).
 * {@code trustRequestChatTemplate}: whether a chat request may bring its own template (vLLM's
 * {@code --trust-request-chat-template}; a template runs code the operator did not write).
 * {@code numerics}: what the served results depend on besides a request and the KV cache dtype (the
 * checkpoint, the weight format served, the experts' wire format): the identity of the prefix cache's
 * disk tier and of the responses' {@code system_fingerprint}.
 */
public record ServedModel(Path directory, ModelConfig config, Transformer transformer, Tokenizer tokenizer,
                          ChatTemplate chatTemplate, CheckpointFingerprint fingerprint, int maxContext,
                          long weightBytesPerToken, RemoteAttention attention, boolean trustRequestChatTemplate,
                          String numerics) {
    private static final Logger LOG = LoggerFactory.getLogger(ServedModel.class);

    public ServedModel {
        if (maxContext < 2 || maxContext > config.maxPositionEmbeddings()) {
            throw new IllegalArgumentException("max context must be in [2, max_position_embeddings "
                    + config.maxPositionEmbeddings() + "], got " + maxContext);
        }
    }

    /**
     * Opens {@code dir} (kept open for the process's life: the weights stay memory-mapped).
     *
     * @param experts    routed experts; null = all local
     * @param maxContext prompt + completion limit; 0 = the model's max_position_embeddings
     */
    public static ServedModel open(Path dir, RoutedExperts experts, int maxContext) {
        return open(dir, experts, maxContext, WeightFormat.AUTO);
    }

    /**
     * As {@link #open(Path, RoutedExperts, int)}, with the linear weights of this process in
     * {@code format} (see {@link ConvertedWeights}). Remote workers choose theirs with their own
     * {@code --weights}; the cluster matches the in-process engine when both use the same.
     */
    public static ServedModel open(Path dir, RoutedExperts experts, int maxContext, WeightFormat format) {
        return open(dir, experts, null, maxContext, format);
    }

    /**
     * As {@link #open(Path, RoutedExperts, int, WeightFormat)}, with attention and the KV caches on
     * attention workers when {@code attention} is not null (data-parallel attention).
     */
    public static ServedModel open(Path dir, RoutedExperts experts, RemoteAttention attention, int maxContext,
            WeightFormat format) {
        Checkpoint checkpoint = Checkpoint.open(dir);
        ModelConfig c = checkpoint.config();
        WeightSource weights = ConvertedWeights.of(checkpoint, format, dir);
        if (experts == null && c.nRoutedExperts() != null) {
            experts = LocalExperts.all(c, weights);
        }
        Transformer transformer = new Transformer(c, weights, experts, attention);
        Tokenizer tokenizer = Tokenizer.fromModelDir(dir);
        String mismatch = vocabularyMismatch(tokenizer, c.vocabSize());
        if (mismatch != null) {
            LOG.warn("{}: {}", dir, mismatch);
        }
        TokenizerConfig tc = tokenizer.config();
        ChatTemplate template = tc.chatTemplate() != null ? ChatTemplate.fromConfig(tc) : ChatTemplate.deepSeekR1_0528(tc);
        int limit = maxContext > 0 ? Math.min(maxContext, c.maxPositionEmbeddings()) : c.maxPositionEmbeddings();
        long bytes = transformer.weightBytesPerToken()
                + (experts instanceof LocalExperts ? 0
                        : format == WeightFormat.AUTO ? remoteExpertBytesPerToken(checkpoint, c)
                        : convertedExpertBytesPerToken(format, c));
        CheckpointFingerprint fingerprint = CheckpointFingerprint.of(dir);
        String wire = experts instanceof dev.epic.coordinator.experts.RemoteExperts r
                ? r.encoding().name().toLowerCase(java.util.Locale.ROOT) : "fp32"; // in process: fp32's bits
        String numerics = "checkpoint=" + fingerprint.sha256() + " weights=" + format.effective(checkpoint).id()
                + " wire=" + wire;
        return new ServedModel(dir, c, transformer, tokenizer, template, fingerprint, limit, bytes, attention, false,
                numerics);
    }

    /**
     * The same model served with {@code template} instead of its tokenizer_config.json's (vLLM's
     * {@code --chat-template}: a file or the template's text); null keeps the model's.
     */
    public ServedModel withChatTemplate(String template) {
        if (template == null) {
            return this;
        }
        ChatTemplate t = ChatTemplate.fromArgument(template, tokenizer.config());
        return new ServedModel(directory, config, transformer, tokenizer, t, fingerprint, maxContext, weightBytesPerToken,
                attention, trustRequestChatTemplate, numerics);
    }

    /** The same model, taking (or not) a chat request's own template. */
    public ServedModel withTrustRequestChatTemplate(boolean trust) {
        return new ServedModel(directory, config, transformer, tokenizer, chatTemplate, fingerprint, maxContext,
                weightBytesPerToken, attention, trust, numerics);
    }

    /**
     * OpenAI's {@code system_fingerprint}: "fp_" and 12 hex digits of a hash of {@link #numerics}, the KV
     * cache dtype, this build's version and the code that computes (the kernels', the model's and this
     * module's classes, {@link CodeIdentity}). Results here are the same bits alone or under load, so the
     * same request with the same seed under the same fingerprint gives the same answer.
     */
    public String systemFingerprint() {
        String v = ServedModel.class.getPackage().getImplementationVersion();
        String all = numerics + " kv=" + transformer.kvCacheDtype().id() + " epic=" + (v == null ? "dev" : v)
                + " code=" + Code.IDENTITY;
        try {
            byte[] h = java.security.MessageDigest.getInstance("SHA-256")
                    .digest(all.getBytes(java.nio.charset.StandardCharsets.UTF_8));
            return "fp_" + java.util.HexFormat.of().formatHex(h, 0, 6);
        } catch (java.security.NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }

    /**
     * What an operator should know when the tokenizer has more tokens than the model's vocabulary (the
     * lm_head's rows), as when a model directory without tokenizer.json gets the shipped DeepSeek-V3
     * one: requests are refused one by one, so say at start-up which; null when the tokenizer fits.
     */
    static String vocabularyMismatch(Tokenizer tokenizer, int vocabSize) {
        if (tokenizer.size() <= vocabSize) {
            return null;
        }
        StringBuilder m = new StringBuilder("the tokenizer has " + tokenizer.size() + " tokens but the model's "
                + "vocabulary is " + vocabSize + ": prompts that encode to ids >= " + vocabSize
                + " are refused (INVALID_ARGUMENT)");
        if (tokenizer.bosId().isPresent() && tokenizer.bosId().getAsInt() >= vocabSize) {
            m.append("; BOS is id ").append(tokenizer.bosId().getAsInt()).append(", so every chat prompt is refused");
        }
        if (tokenizer.eosId().isPresent() && tokenizer.eosId().getAsInt() >= vocabSize) {
            m.append("; EOS is id ").append(tokenizer.eosId().getAsInt())
                    .append(", which the model cannot produce: answers end only at max_tokens or a stop");
        }
        return m.append(". Put the model's own tokenizer.json and tokenizer_config.json in its directory.").toString();
    }

    /** As {@link #remoteExpertBytesPerToken}, for workers converting to {@code format} (sized, not converted). */
    static long convertedExpertBytesPerToken(WeightFormat format, ModelConfig c) {
        int hidden = c.hiddenSize(), inter = c.moeIntermediateSize();
        long perExpert = 2 * format.convertedBytes(inter, hidden) + format.convertedBytes(hidden, inter); // gate, up; down
        long moeLayers = IntStream.range(0, c.numHiddenLayers()).filter(c::isMoeLayer).count();
        return moeLayers * c.numExpertsPerTok() * perExpert;
    }

    /**
     * Routed-expert weights one token reads on the workers: k experts per MoE layer, each its
     * gate/up/down projections (and fp8 block scales), sized from expert 0's tensors.
     */
    static long remoteExpertBytesPerToken(Checkpoint checkpoint, ModelConfig c) {
        if (c.nRoutedExperts() == null) {
            return 0;
        }
        long bytes = 0;
        for (int layer = 0; layer < c.numHiddenLayers(); layer++) {
            if (!c.isMoeLayer(layer)) {
                continue;
            }
            String prefix = "model.layers." + layer + ".mlp.experts.0.";
            for (String proj : new String[] {"gate_proj", "up_proj", "down_proj"}) {
                for (String suffix : new String[] {".weight", ".weight_scale_inv"}) {
                    String name = prefix + proj + suffix;
                    if (checkpoint.contains(name)) {
                        bytes += (long) c.numExpertsPerTok() * checkpoint.info(name).byteSize();
                    }
                }
            }
        }
        return bytes;
    }

    /** A short name for logs: the directory's name. */
    public String name() {
        return fingerprint.name();
    }

    /** The code's identity, computed once, when first asked for. */
    private static final class Code {
        static final String IDENTITY = CodeIdentity.of(dev.epic.kernels.VectorOps.class, Transformer.class,
                ServedModel.class);
    }
}
