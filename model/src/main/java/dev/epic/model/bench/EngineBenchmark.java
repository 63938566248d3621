package dev.epic.model.bench;

import dev.epic.kernels.Bandwidth;
import dev.epic.kernels.FmaPeak;
import dev.epic.kernels.VectorOps;
import dev.epic.model.ForwardObserver;
import dev.epic.model.KvCache;
import dev.epic.model.SequenceChunk;
import dev.epic.model.Transformer;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.layers.Mtp;
import dev.epic.model.layers.Routing;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Measures the single-process engine: prefill of one prompt (in chunks of at most {@code chunk}
 * tokens, as the scheduler feeds it; best of three passes), then greedy decode at each batch size, plus the numbers
 * needed to judge decode against the memory roofline (weight bytes per token, measured bandwidth).
 *
 * <p>Decode batches start from copies of the prefilled prompt's cache (a shared prefix); each sequence
 * gets a different random first token so rows route to different experts, then continues greedily.
 * A warm-up prefill and a few decode steps run first so the JIT has compiled the hot loops.
 */
public final class EngineBenchmark {
    private static final int PREFILL_PASSES = 3;

    private static final Logger log = LoggerFactory.getLogger(EngineBenchmark.class);

    /**
     * @param drafts draft counts whose batch-1 verification steps are timed (speculative decoding); may be empty
     * @param mtp    also time batch-1 steps that draft this many tokens with the checkpoint's MTP layer (the
     *               check of the drafts, and the MTP layer's chained passes that make the next; 0: none)
     */
    public record Options(List<Integer> batches, int promptLen, int gen, int chunk, long seed, List<Integer> drafts,
            int mtp) {
        public Options {
            if (mtp < 0) {
                throw new IllegalArgumentException("MTP drafts must be >= 0, got " + mtp);
            }
            if (batches.isEmpty() || batches.stream().anyMatch(b -> b < 1)) {
                throw new IllegalArgumentException("batch sizes must be >= 1, got " + batches);
            }
            if (drafts.stream().anyMatch(k -> k < 1)) {
                throw new IllegalArgumentException("draft counts must be >= 1, got " + drafts);
            }
            if (promptLen < 1 || gen < 1 || chunk < 1) {
                throw new IllegalArgumentException("prompt-len, gen and chunk must be >= 1");
            }
        }
    }

    /**
     * One batch size's decode. {@code bytesPerStep} is the mean weight traffic of its steps: every matrix
     * once, and each MoE layer's distinct experts once (batch 32 of bench-v3 touches about 160 of 256).
     */
    public record Decode(int batch, double tokS, double itlP50Ms, double itlP99Ms, double bytesPerStep) {}

    /**
     * Batch-1 speculative decoding: a step that feeds the pending token and {@code drafts} drafts and
     * returns the logits of all of them (with {@code mtp}, then runs the MTP layer once per draft, chained,
     * for the next step's drafts).
     * Every draft kept, it yields drafts + 1 tokens; none kept, one.
     */
    public record Verify(int drafts, double stepMsP50, double stepMsMean, boolean mtp) {
        public double tokSAllKept() {
            return (drafts + 1) * 1e3 / stepMsMean;
        }

        public double tokSNoneKept() {
            return 1e3 / stepMsMean;
        }
    }

    /**
     * @param fmaGFlops           fp32 FMA throughput of the kernel threads, measured in the same run
     * @param multiplyAddsPerToken one token's multiply-adds through the weights (attention over the cache not counted)
     */
    public record Result(double prefillTokS, double ttftMs, List<Decode> decode, double rssMb, long bytesPerToken,
            double bandwidthGBs, double rooflineFraction, double fmaGFlops, long multiplyAddsPerToken, List<Verify> verify) {
        /** Decode tok/s the memory bandwidth allows at batch 1: bandwidth / weight bytes per token. */
        public double rooflineTokS() {
            return bandwidthGBs * 1e9 / bytesPerToken;
        }

        /** Decode tok/s the memory bandwidth allows at this batch size: batch x bandwidth / bytes per step. */
        public double rooflineTokS(Decode d) {
            return d.batch() * bandwidthGBs * 1e9 / d.bytesPerStep();
        }

        /**
         * Decode tok/s the fp32 FMA peak allows at any batch size: peak / (2 x multiply-adds per token).
         * An upper bound: attention over the cache, norms and routing come on top.
         */
        public double computeCeilingTokS() {
            return fmaGFlops * 1e9 / (2.0 * multiplyAddsPerToken);
        }
    }

    private EngineBenchmark() {}

    public static Result run(Transformer model, Options o) {
        int vocab = model.config().vocabSize();
        if (o.promptLen() + o.gen() + 1 > model.config().maxPositionEmbeddings()) {
            throw new IllegalArgumentException("prompt-len + gen exceeds max_position_embeddings "
                    + model.config().maxPositionEmbeddings());
        }
        if (o.mtp() > 0) {
            model.enableMtp(); // before any cache is made: its KV is one more layer
        }
        SplittableRandom random = new SplittableRandom(o.seed());
        int[] prompt = random.ints(o.promptLen(), 2, vocab).toArray();

        // Warm-up: one prefill and at least 32 decoded tokens (3 steps) at each batch size, so that
        // C2 has compiled the decode kernels before the timed steps (it compiles in the background).
        KvCache warm = model.newCache();
        prefill(model, warm, prompt, o.chunk());
        for (int b : o.batches()) {
            decode(model, warm, prompt.length, b, Math.min(Math.max(3, Math.ceilDiv(32, b)), o.gen()), random);
        }
        for (int k : o.drafts()) {
            verify(model, warm, prompt.length, k, Math.min(8, o.gen()), random, false);
        }
        if (o.mtp() > 0) {
            verify(model, warm, prompt.length, o.mtp(), Math.min(8, o.gen()), random, true);
        }

        // Prefill: best of three passes (llama.cpp's figures are best passes too); the last cache is
        // the decode prefix.
        KvCache cache = null;
        double prefillSeconds = Double.MAX_VALUE;
        for (int pass = 0; pass < PREFILL_PASSES; pass++) {
            cache = model.newCache();
            long t0 = System.nanoTime();
            float[] logits = prefill(model, cache, prompt, o.chunk());
            VectorOps.argmax(logits);
            prefillSeconds = Math.min(prefillSeconds, (System.nanoTime() - t0) / 1e9);
        }
        log.info("bench: prefill {} tokens in {} s (best of {})", prompt.length, String.format("%.3f", prefillSeconds),
                PREFILL_PASSES);

        List<Decode> decodes = new ArrayList<>();
        for (int b : o.batches()) {
            Decode d = decode(model, cache, prompt.length, b, o.gen(), random);
            log.info("bench: batch {}: {} tok/s, itl p50 {} ms", b, String.format("%.1f", d.tokS()),
                    String.format("%.2f", d.itlP50Ms()));
            decodes.add(d);
        }
        List<Verify> verifies = new ArrayList<>();
        for (int k : o.drafts()) {
            verifies.add(verify(model, cache, prompt.length, k, o.gen(), random, false));
        }
        if (o.mtp() > 0) {
            verifies.add(verify(model, cache, prompt.length, o.mtp(), o.gen(), random, true));
        }
        for (Verify v : verifies) {
            log.info("bench: batch 1 with {} drafts{}: step {} ms, {} tok/s all kept, {} none kept", v.drafts(),
                    v.mtp() ? " by the MTP layer" : "", String.format("%.2f", v.stepMsMean()),
                    String.format("%.1f", v.tokSAllKept()), String.format("%.1f", v.tokSNoneKept()));
        }
        // Measured last: run first, the probe's 256 MiB pass left the kernel pool measurably slower for
        // the decode that followed (q4 batch 1: 12 -> 20 ms/token), so it would skew the numbers it judges.
        double bandwidth = Bandwidth.measureGBs();
        double flops = FmaPeak.measureGFlops(5);
        log.info("bench: read bandwidth {} GB/s, fp32 FMA peak {} GFLOP/s", String.format("%.1f", bandwidth),
                String.format("%.0f", flops));
        long bytes = model.weightBytesPerToken();
        double batch1 = decodes.stream().filter(d -> d.batch() == 1).mapToDouble(Decode::tokS).findFirst()
                .orElse(Double.NaN);
        return new Result(prompt.length / prefillSeconds, prefillSeconds * 1e3, decodes, ProcessStats.residentMb(), bytes,
                bandwidth, batch1 / (bandwidth * 1e9 / bytes), flops, model.multiplyAddsPerToken(), verifies);
    }

    /** Feeds the prompt in chunks; returns the last position's logits. */
    private static float[] prefill(Transformer model, KvCache cache, int[] prompt, int chunk) {
        float[] logits = null;
        for (int s = 0; s < prompt.length; s += chunk) {
            int[] part = Arrays.copyOfRange(prompt, s, Math.min(prompt.length, s + chunk));
            logits = model.step(List.of(new SequenceChunk(cache, part, s))).getFirst();
        }
        return logits;
    }

    /** {@code steps} greedy steps of {@code batch} sequences that share the first {@code len} cached positions. */
    private static Decode decode(Transformer model, KvCache prefix, int len, int batch, int steps,
            SplittableRandom random) {
        int vocab = model.config().vocabSize();
        KvCache[] caches = new KvCache[batch];
        int[] next = new int[batch];
        for (int i = 0; i < batch; i++) {
            caches[i] = copy(model, prefix, len, len + steps);
            next[i] = random.nextInt(2, vocab);
        }
        double[] stepMs = new double[steps];
        ExpertsTouched touched = new ExpertsTouched(model.config());
        double bytes = 0;
        long start = System.nanoTime();
        for (int k = 0; k < steps; k++) {
            List<SequenceChunk> chunks = new ArrayList<>(batch);
            for (int i = 0; i < batch; i++) {
                chunks.add(new SequenceChunk(caches[i], new int[] {next[i]}, len + k));
            }
            long t = System.nanoTime();
            touched.clear();
            List<float[]> logits = model.step(chunks, touched);
            bytes += model.weightBytesPerStep(touched.counts);
            for (int i = 0; i < batch; i++) {
                next[i] = VectorOps.argmax(logits.get(i));
            }
            stepMs[k] = (System.nanoTime() - t) / 1e6;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        Arrays.sort(stepMs);
        return new Decode(batch, (double) batch * steps / seconds, percentile(stepMs, 0.50), percentile(stepMs, 0.99),
                bytes / steps);
    }

    /**
     * {@code steps} batch-1 verification steps: the pending token and {@code drafts} random drafts, the
     * logits of every position, the argmax of each row (a greedy check). The cache then keeps one
     * position, as when no draft is kept; the attention over one position more or less costs nothing
     * next to the weights, so the step time holds for any share kept. With {@code mtp} the drafts are
     * the MTP layer's, as the scheduler makes them: after each check it runs over the position kept,
     * then once more per further draft, each pass on the one before's output and draft.
     */
    private static Verify verify(Transformer model, KvCache prefix, int len, int drafts, int steps,
            SplittableRandom random, boolean mtp) {
        int vocab = model.config().vocabSize();
        KvCache cache = copy(model, prefix, len, len + steps + drafts);
        double[] stepMs = new double[steps];
        int next = random.nextInt(2, vocab);
        int[] chained = new int[drafts];
        long start = System.nanoTime();
        for (int k = 0; k < steps; k++) {
            int[] feed = new int[drafts + 1];
            feed[0] = next;
            for (int j = 1; j <= drafts; j++) {
                feed[j] = random.nextInt(2, vocab);
            }
            if (mtp && k > 0) {
                System.arraycopy(chained, 0, feed, 1, drafts);
            }
            long t = System.nanoTime();
            List<SequenceChunk> chunk = List.of(new SequenceChunk(cache, feed, len + k, true));
            Transformer.Output out = mtp ? model.stepWithHidden(chunk) : new Transformer.Output(model.step(chunk), null);
            float[] rows = out.logits().getFirst();
            for (int j = drafts; j >= 0; j--) {
                next = VectorOps.argmax(Arrays.copyOfRange(rows, j * vocab, (j + 1) * vocab));
            }
            cache.setLength(len + k + 1);
            if (mtp) {
                Mtp.Draft d = model.mtp().step(List.of(new Mtp.Chunk(cache, len + k, new int[] {next}, out.hidden(), 0,
                        true))).getFirst();
                chained[0] = VectorOps.argmax(d.logits());
                for (int j = 1; j < drafts; j++) { // at the pending token's position j - 1 on
                    d = model.mtp().step(List.of(new Mtp.Chunk(cache, len + k + j, new int[] {chained[j - 1]},
                            d.hidden(), 0, true))).getFirst();
                    chained[j] = VectorOps.argmax(d.logits());
                }
            }
            stepMs[k] = (System.nanoTime() - t) / 1e6;
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        Arrays.sort(stepMs);
        return new Verify(drafts, percentile(stepMs, 0.50), seconds * 1e3 / steps, mtp);
    }

    /** Counts each MoE layer's distinct experts in one step. */
    private static final class ExpertsTouched implements ForwardObserver {
        final int[] counts;
        private final boolean[] seen;

        ExpertsTouched(ModelConfig c) {
            counts = new int[c.numHiddenLayers()];
            seen = new boolean[c.nRoutedExperts() != null ? c.nRoutedExperts() : 0];
        }

        void clear() {
            Arrays.fill(counts, 0);
        }

        @Override
        public void routing(int layer, Routing routing) {
            Arrays.fill(seen, false);
            for (int e : routing.experts()) {
                if (!seen[e]) {
                    seen[e] = true;
                    counts[layer]++;
                }
            }
        }
    }

    /** A new cache holding positions [0, len) of src (its own pages, as a sequence's), with room for {@code capacity}. */
    private static KvCache copy(Transformer model, KvCache src, int len, int capacity) {
        int rank = model.config().kvLoraRank();
        int rope = model.config().qkRopeHeadDim();
        KvCache dst = model.newCache();
        dst.reserve(capacity);
        float[] lat = new float[len * rank];
        float[] pe = new float[len * rope];
        for (int layer = 0; layer < model.cacheLayers(); layer++) {
            src.read(layer, len, lat, pe);
            for (int p = 0; p < len; p++) {
                dst.write(layer, p, lat, p * rank, pe, p * rope);
            }
        }
        dst.setLength(len);
        return dst;
    }

    /** Nearest-rank percentile of sorted values (NaN when there are none). */
    public static double percentile(double[] sorted, double q) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        int i = (int) Math.ceil(q * sorted.length) - 1;
        return sorted[Math.clamp(i, 0, sorted.length - 1)];
    }
}
