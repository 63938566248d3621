package dev.epic.cli;

import dev.epic.model.bench.EngineBenchmark;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LatencyHistogram;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.SamplingParams;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.TokenIds;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.stub.ClientCallStreamObserver;
import io.grpc.stub.ClientResponseObserver;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.zip.DataFormatException;
import org.HdrHistogram.Histogram;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * {@code epic bench --target}: the engine benchmark's measurements taken through a running
 * coordinator's public gRPC API, plus what expert parallelism costs, from the coordinator's Stats.
 *
 * <p>Prefill: one stream with a random prompt of {@code promptLen} token ids and one output token;
 * TTFT is the time to its first token. Decode at batch B: B concurrent streams, each with its own
 * random prompt, greedy, EOS ignored. The measured window opens once every stream has its first
 * token (all prompts prefilled, so every step is B decode rows) and closes once every stream has
 * {@code gen} more tokens; then the streams are cancelled. Stats are read at both ends of each
 * window and subtracted (counters and HdrHistograms are cumulative on the server).
 */
final class ClusterBenchmark {
    private static final Logger log = LoggerFactory.getLogger(ClusterBenchmark.class);
    private static final long PHASE_TIMEOUT_MINUTES = 30;

    /**
     * @param warmup        tokens each warm-up stream decodes at each batch size before measuring
     * @param warmupSeconds seconds of batch-1 decode first (the cheapest way to many dispatch calls)
     */
    record Options(List<Integer> batches, int promptLen, int gen, int warmup, double warmupSeconds, long seed) {
        Options {
            if (batches.isEmpty() || batches.stream().anyMatch(b -> b < 1)) {
                throw new IllegalArgumentException("batch sizes must be >= 1, got " + batches);
            }
            if (promptLen < 1 || gen < 1 || warmup < 1) {
                throw new IllegalArgumentException("prompt-len, gen and warmup must be >= 1");
            }
            if (!(warmupSeconds >= 0)) {
                throw new IllegalArgumentException("warmup-seconds must be >= 0, got " + warmupSeconds);
            }
        }
    }

    /** What the coordinator did between two Stats answers. */
    record Interval(long steps, long stepNanos, long decodeRows, long prefillRows, boolean remoteExperts,
            long layerCalls, long layerNanos, long workerComputeNanos, long dispatchCombineNanos, Histogram layer,
            Histogram dispatchCombine, boolean remoteAttention, long attentionNanos, long attentionComputeNanos) {
        static Interval between(StatsResponse a, StatsResponse b) {
            return new Interval(b.getSteps() - a.getSteps(), b.getStepNanos() - a.getStepNanos(),
                    b.getDecodeRows() - a.getDecodeRows(), b.getPrefillRows() - a.getPrefillRows(),
                    b.getRemoteExperts(), b.getMoeLayerCalls() - a.getMoeLayerCalls(),
                    b.getMoeLayerNanos() - a.getMoeLayerNanos(), b.getWorkerComputeNanos() - a.getWorkerComputeNanos(),
                    b.getDispatchCombineNanos() - a.getDispatchCombineNanos(),
                    minus(b.getMoeLayer(), a.getMoeLayer()), minus(b.getDispatchCombine(), a.getDispatchCombine()),
                    b.getRemoteAttention(), b.getAttentionLayerNanos() - a.getAttentionLayerNanos(),
                    b.getAttentionWorkerComputeNanos() - a.getAttentionWorkerComputeNanos());
        }

        /** Share of step wall time spent in remote attention calls (NaN without attention workers or steps). */
        double attentionShare() {
            return remoteAttention && stepNanos > 0 ? (double) attentionNanos / stepNanos : Double.NaN;
        }

        /** Share of step wall time spent in dispatch + combine (NaN without remote experts or steps). */
        double dispatchCombineShare() {
            return remoteExperts && stepNanos > 0 ? (double) dispatchCombineNanos / stepNanos : Double.NaN;
        }

        double stepMs() {
            return steps == 0 ? Double.NaN : stepNanos / 1e6 / steps;
        }

        double rowsPerStep() {
            return steps == 0 ? Double.NaN : (double) (decodeRows + prefillRows) / steps;
        }

        static double percentileMicros(Histogram h, double q) {
            return h.getTotalCount() == 0 ? Double.NaN : h.getValueAtPercentile(q) / 1e3;
        }
    }

    record Decode(int batch, double tokS, double itlP50Ms, double itlP99Ms, long tokens, Interval stats) {}

    record Result(ModelInfoResponse info, double prefillTokS, double ttftMs, Interval prefill, List<Decode> decode,
            StatsResponse last) {}

    private final GenerationServiceGrpc.GenerationServiceStub async;
    private final GenerationServiceGrpc.GenerationServiceBlockingStub blocking;

    ClusterBenchmark(ManagedChannel channel) {
        this.async = GenerationServiceGrpc.newStub(channel);
        this.blocking = GenerationServiceGrpc.newBlockingStub(channel);
    }

    private StatsResponse stats() {
        return blocking.withDeadlineAfter(30, TimeUnit.SECONDS).stats(StatsRequest.getDefaultInstance());
    }

    Result run(Options o) throws InterruptedException {
        ModelInfoResponse info = blocking.withDeadlineAfter(30, TimeUnit.SECONDS).modelInfo(
                ModelInfoRequest.getDefaultInstance());
        StatsResponse first = stats();
        int maxBatch = first.getMaxBatch();
        for (int b : o.batches()) {
            if (b > maxBatch) {
                throw new IllegalArgumentException("batch " + b + " exceeds the coordinator's max-batch " + maxBatch
                        + ": streams beyond it would queue; start it with --max-batch " + b + " or more");
            }
        }
        // Prompt ids must be in the tokenizer's vocabulary (the lm_head may have padding rows beyond it).
        int vocab = info.getTokenizerVocabSize() > 0 ? Math.min(info.getVocabSize(), info.getTokenizerVocabSize())
                : info.getVocabSize();
        // The seed makes the prompts; each run's first token is new (a coordinator's prefix cache keeps
        // earlier runs' prompts, and a repeated prompt would be served from it, not prefilled).
        RandomPrompts random = new RandomPrompts(new SplittableRandom(o.seed()),
                2 + (int) Math.floorMod(System.nanoTime(), (long) vocab - 2), vocab);

        // Warm-up: the JIT of the coordinator, the workers and this client compiles the dispatch
        // path only after thousands of calls; short warm-ups measured 2-3x the steady-state latency.
        runStreams(List.of(random.next(o.promptLen())), 2, 0);
        if (o.warmupSeconds() > 0) {
            decodeFor(random.next(Math.min(8, o.promptLen())), o.warmupSeconds(),
                    info.getMaxContext() - Math.min(8, o.promptLen()));
        }
        for (int b : o.batches()) {
            List<int[]> prompts = new ArrayList<>();
            for (int i = 0; i < b; i++) {
                prompts.add(random.next(Math.min(8, o.promptLen())));
            }
            runStreams(prompts, o.warmup(), 0);
        }

        StatsResponse s0 = stats();
        Phase prefill = runStreams(List.of(random.next(o.promptLen())), 1, 0);
        StatsResponse s1 = stats();
        double ttftSeconds = prefill.streams.getFirst().firstTokenNanos() / 1e9;
        log.info("bench: prefill {} tokens, TTFT {} ms", o.promptLen(), String.format("%.1f", ttftSeconds * 1e3));

        List<Decode> decodes = new ArrayList<>();
        StatsResponse last = s1;
        for (int b : o.batches()) {
            List<int[]> prompts = new ArrayList<>();
            for (int i = 0; i < b; i++) {
                prompts.add(random.next(o.promptLen()));
            }
            // Early streams decode while later prompts are still being prefilled: ask for enough
            // tokens that none finishes before the window closes (they are cancelled then).
            int budget = Math.max(1, last.getPrefillBudget());
            int maxTokens = (int) Math.ceil((double) b * o.promptLen() / budget) + b + 2 * o.gen() + 16;
            if (o.promptLen() + maxTokens > info.getMaxContext()) {
                maxTokens = info.getMaxContext() - o.promptLen();
            }
            Phase phase = runStreams(prompts, maxTokens, o.gen());
            Decode d = phase.decode(b);
            decodes.add(d);
            last = phase.after;
            log.info("bench: batch {}: {} tok/s, itl p50 {} ms, dispatch+combine {}% of step time", b,
                    String.format("%.1f", d.tokS()), String.format("%.2f", d.itlP50Ms()),
                    String.format("%.1f", 100 * d.stats().dispatchCombineShare()));
        }
        return new Result(info, o.promptLen() / ttftSeconds, ttftSeconds * 1e3, Interval.between(s0, s1), decodes,
                stats());
    }

    /** One stream decoding for {@code seconds} (or until maxTokens), then cancelled. */
    private void decodeFor(int[] prompt, double seconds, int maxTokens) throws InterruptedException {
        Phase phase = start(List.of(prompt), maxTokens, 0);
        long until = System.nanoTime() + (long) (seconds * 1e9);
        while (System.nanoTime() < until && phase.finished.getCount() > 0) {
            phase.finished.await(Math.min(100_000_000L, Math.max(1, until - System.nanoTime())), TimeUnit.NANOSECONDS);
            phase.check();
        }
        phase.streams.getFirst().cancel();
        phase.await(phase.finished, "the warm-up stream to end");
        phase.check();
    }

    /** Prompts of ids in [2, vocab) drawn from the seed, each starting with this run's {@code first} id. */
    private record RandomPrompts(SplittableRandom random, int first, int vocab) {
        int[] next(int len) {
            int[] p = random.ints(len, 2, vocab).toArray();
            p[0] = first; // no block of it matches an earlier run's prompt
            return p;
        }
    }

    /**
     * Starts one stream per prompt. With {@code window == 0}, waits for all to finish. Otherwise
     * opens the window once every stream has its first token, closes it once each has
     * {@code window} tokens inside it, reads Stats at both ends, and cancels the streams.
     */
    private Phase runStreams(List<int[]> prompts, int maxTokens, int window) throws InterruptedException {
        Phase phase = start(prompts, maxTokens, window);
        if (window == 0) {
            phase.await(phase.finished, "streams to finish");
            phase.check();
            return phase;
        }
        phase.await(phase.firstTokens, "every stream's first token");
        phase.check();
        // The window opens once Stats has answered: tokens that arrived while it was read may come from
        // steps it already counted (a short window could otherwise hold tokens but no steps).
        phase.before = stats();
        phase.windowStart = System.nanoTime();
        phase.open = true;
        for (Stream s : phase.streams) {
            s.checkWindow(); // tokens that arrived since the window opened count already
        }
        phase.await(phase.windowDone, "the decode window");
        phase.windowEnd = System.nanoTime();
        phase.after = stats();
        phase.check();
        for (Stream s : phase.streams) {
            s.cancel();
        }
        phase.await(phase.finished, "cancelled streams to end");
        return phase;
    }

    /** Starts one greedy, EOS-ignoring stream per prompt. */
    private Phase start(List<int[]> prompts, int maxTokens, int window) {
        Phase phase = new Phase(prompts.size(), window);
        for (int[] p : prompts) {
            TokenIds.Builder ids = TokenIds.newBuilder();
            for (int id : p) {
                ids.addIds(id);
            }
            GenerateRequest req = GenerateRequest.newBuilder().setTokenIds(ids)
                    .setSampling(SamplingParams.newBuilder().setTemperature(0).setIgnoreEos(true).setMaxTokens(maxTokens))
                    .setRequestId("bench-" + phase.streams.size())
                    .build();
            Stream s = new Stream(phase);
            phase.streams.add(s);
            s.start = System.nanoTime();
            async.generate(req, s);
        }
        return phase;
    }

    /** One set of concurrent streams. */
    private final class Phase {
        final List<Stream> streams = new ArrayList<>();
        final CountDownLatch firstTokens;
        final CountDownLatch windowDone;
        final CountDownLatch finished;
        final int window;
        volatile boolean open;
        volatile long windowStart = Long.MAX_VALUE;
        long windowEnd;
        StatsResponse before;
        StatsResponse after;
        volatile Throwable failure;

        Phase(int n, int window) {
            this.firstTokens = new CountDownLatch(n);
            this.windowDone = new CountDownLatch(n);
            this.finished = new CountDownLatch(n);
            this.window = window;
        }

        void await(CountDownLatch latch, String what) throws InterruptedException {
            while (!latch.await(100, TimeUnit.MILLISECONDS)) {
                check();
                if (System.nanoTime() - streams.getFirst().start > TimeUnit.MINUTES.toNanos(PHASE_TIMEOUT_MINUTES)) {
                    throw new IllegalStateException("timed out after " + PHASE_TIMEOUT_MINUTES + " min waiting for "
                            + what);
                }
            }
        }

        void check() {
            Throwable f = failure;
            if (f != null) {
                Status s = Status.fromThrowable(f);
                throw new IllegalStateException("stream failed: " + s.getCode() + ": " + s.getDescription(), f);
            }
        }

        Decode decode(int batch) {
            long tokens = 0;
            List<Long> gaps = new ArrayList<>();
            for (Stream s : streams) {
                long prev = -1;
                for (long t : s.arrivals()) {
                    if (t < windowStart || t > windowEnd) {
                        continue;
                    }
                    tokens++;
                    if (prev >= 0) {
                        gaps.add(t - prev);
                    }
                    prev = t;
                }
            }
            double[] ms = gaps.stream().mapToDouble(g -> g / 1e6).sorted().toArray();
            double seconds = (windowEnd - windowStart) / 1e9;
            return new Decode(batch, tokens / seconds, EngineBenchmark.percentile(ms, 0.50), EngineBenchmark.percentile(ms, 0.99), tokens,
                    Interval.between(before, after));
        }
    }

    /** One Generate stream: arrival time of each token. */
    private static final class Stream implements ClientResponseObserver<GenerateRequest, GenerateResponse> {
        private final Phase phase;
        private long[] arrivals = new long[64];
        private int count;
        private boolean inWindow;
        private ClientCallStreamObserver<GenerateRequest> call;
        long start;
        private volatile long firstToken;
        private boolean done;

        Stream(Phase phase) {
            this.phase = phase;
        }

        @Override
        public void beforeStart(ClientCallStreamObserver<GenerateRequest> requestStream) {
            this.call = requestStream;
        }

        @Override
        public void onNext(GenerateResponse r) {
            long now = System.nanoTime();
            synchronized (this) {
                for (int i = 0; i < r.getTokenIdsCount(); i++) {
                    if (count == arrivals.length) {
                        arrivals = Arrays.copyOf(arrivals, 2 * count);
                    }
                    arrivals[count++] = now;
                }
                if (firstToken == 0 && count > 0) {
                    firstToken = now;
                    phase.firstTokens.countDown();
                }
            }
            checkWindow();
        }

        synchronized void checkWindow() {
            if (inWindow || !phase.open) {
                return;
            }
            int n = 0;
            for (int i = 0; i < count; i++) {
                if (arrivals[i] >= phase.windowStart) {
                    n++;
                }
            }
            if (n >= phase.window) {
                inWindow = true;
                phase.windowDone.countDown();
            }
        }

        synchronized long[] arrivals() {
            return Arrays.copyOf(arrivals, count);
        }

        long firstTokenNanos() {
            return firstToken - start;
        }

        void cancel() {
            call.cancel("benchmark window closed", null);
        }

        @Override
        public void onError(Throwable t) {
            if (Status.fromThrowable(t).getCode() != Status.Code.CANCELLED) {
                phase.failure = t;
            }
            end();
        }

        @Override
        public void onCompleted() {
            if (phase.window > 0 && !inWindowSafe()) {
                phase.failure = Status.FAILED_PRECONDITION.withDescription("a stream ended before the decode window "
                        + "closed (max_tokens or the context limit reached)").asRuntimeException();
            }
            end();
        }

        private synchronized boolean inWindowSafe() {
            return inWindow;
        }

        private synchronized void end() {
            if (!done) {
                done = true;
                phase.finished.countDown();
                if (firstToken == 0) {
                    phase.firstTokens.countDown(); // never blocks the phase; check() reports the failure
                }
            }
        }
    }

    /** Interval's distribution: cumulative histogram b minus a (both as the server encoded them). */
    static Histogram minus(LatencyHistogram b, LatencyHistogram a) {
        Histogram hb = decode(b);
        Histogram ha = decode(a);
        if (hb == null) {
            return new Histogram(3);
        }
        if (ha != null) {
            hb.subtract(ha);
        }
        return hb;
    }

    private static Histogram decode(LatencyHistogram h) {
        if (h.getHdrHistogram().isEmpty()) {
            return null;
        }
        try {
            return Histogram.decodeFromCompressedByteBuffer(ByteBuffer.wrap(h.getHdrHistogram().toByteArray()), 0);
        } catch (DataFormatException e) {
            throw new IllegalStateException("coordinator sent an undecodable latency histogram: " + e.getMessage(), e);
        }
    }}
