package dev.epic.coordinator.metrics;

import dev.epic.coordinator.scheduler.PrefixCache;
import dev.epic.coordinator.scheduler.PrefixDisk;
import dev.epic.model.PrefixStore;
import dev.epic.coordinator.scheduler.Scheduler;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.FunctionCounter;
import io.micrometer.core.instrument.FunctionTimer;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import java.time.Duration;
import java.util.concurrent.TimeUnit;

/**
 * The coordinator's serving meters, named like vLLM's where they mean the same: sequences running
 * and waiting, scheduler steps and the token positions they processed, and per request the time to
 * first token, the time per output token, the end-to-end latency, prompt and generated tokens and
 * how it finished. The process's JVM meters come with its registry ({@code ProcessMeters}).
 */
public final class ServingMetrics {
    private final MeterRegistry registry;
    private final Timer ttft;
    private final Timer perOutputToken;
    private final Timer e2e;
    private final Counter promptTokens;
    private final Counter generationTokens;

    private ServingMetrics(MeterRegistry registry) {
        this.registry = registry;
        this.ttft = Timer.builder("epic.request.time.to.first.token").description("request arrival to its first token")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1))
                .maximumExpectedValue(Duration.ofMinutes(5)).register(registry);
        this.perOutputToken = Timer.builder("epic.request.time.per.output.token")
                .description("mean time between a request's generated tokens after the first")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1))
                .maximumExpectedValue(Duration.ofSeconds(10)).register(registry);
        this.e2e = Timer.builder("epic.request.latency").description("request arrival to its last token")
                .publishPercentileHistogram().minimumExpectedValue(Duration.ofMillis(1))
                .maximumExpectedValue(Duration.ofMinutes(30)).register(registry);
        this.promptTokens = Counter.builder("epic.tokens.prompt").description("prompt tokens of finished requests")
                .register(registry);
        this.generationTokens = Counter.builder("epic.tokens.generation")
                .description("tokens generated for finished requests").register(registry);
    }

    /** Meters for the requests served, and gauges and counters read from {@code scheduler}. */
    public static ServingMetrics bind(MeterRegistry registry, Scheduler scheduler) {
        Gauge.builder("epic.sequences.running", scheduler, Scheduler::running)
                .description("sequences holding a batch slot").register(registry);
        Gauge.builder("epic.sequences.waiting", scheduler, Scheduler::waiting)
                .description("requests queued for a batch slot").register(registry);
        FunctionCounter.builder("epic.scheduler.steps", scheduler, s -> s.stepStats().steps())
                .description("forward steps run").register(registry);
        FunctionTimer.builder("epic.scheduler.step", scheduler, s -> s.stepStats().steps(),
                s -> s.stepStats().stepNanos(), TimeUnit.NANOSECONDS)
                .description("wall time of forward steps").register(registry);
        FunctionCounter.builder("epic.scheduler.positions", scheduler, s -> s.stepStats().decodeRows())
                .tag("kind", "decode").description("token positions processed by steps").register(registry);
        FunctionCounter.builder("epic.scheduler.positions", scheduler, s -> s.stepStats().prefillRows())
                .tag("kind", "prefill").description("token positions processed by steps").register(registry);
        FunctionCounter.builder("epic.scheduler.preemptions", scheduler, Scheduler::preemptions)
                .description("sequences preempted to keep the KV cache budget, to be recomputed").register(registry);
        FunctionCounter.builder("epic.speculative.draft.tokens", scheduler, Scheduler::draftTokens)
                .description("draft tokens fed to the model by speculative decoding (prompt lookup)").register(registry);
        FunctionCounter.builder("epic.speculative.accepted.tokens", scheduler, Scheduler::acceptedDrafts)
                .description("draft tokens that were the tokens chosen").register(registry);
        Gauge.builder("epic.scheduler.batch.peak", scheduler, Scheduler::peakBatch)
                .description("the most sequences one step has carried").register(registry);
        Gauge.builder("epic.kv.cache.bytes", scheduler, Scheduler::kvCacheBytes)
                .description("bytes of KV cache the running sequences hold: here, or reserved on attention workers "
                        + "(their own epic_attention_kv_cache_bytes counts every coordinator's)").register(registry);
        Gauge.builder("epic.kv.cache.budget.bytes", scheduler,
                        s -> s.kvCacheBudget() == Long.MAX_VALUE ? Double.NaN : s.kvCacheBudget())
                .description("the most bytes of KV cache held at once: --kv-cache-mb, or the attention workers' "
                        + "budgets added up (NaN when they announce none)").register(registry);
        PrefixStore prefixes = scheduler.prefixCache();
        if (prefixes != null) {
            FunctionCounter.builder("epic.prefix.cache.queries", prefixes, PrefixStore::queriedTokens)
                    .baseUnit("tokens").description("prompt tokens looked up in the prefix cache").register(registry);
            FunctionCounter.builder("epic.prefix.cache.hits", prefixes, PrefixStore::hitTokens)
                    .baseUnit("tokens").description("prompt tokens found in the prefix cache, not prefilled again")
                    .register(registry);
            Gauge.builder("epic.prefix.cache.usage", prefixes, PrefixStore::storedBytes).baseUnit("bytes")
                    .description("latent KV held by the prefix cache").register(registry);
            if (prefixes instanceof PrefixCache p && p.disk() != null) {
                FunctionCounter.builder("epic.prefix.cache.disk.hits", p, PrefixCache::diskHitTokens).baseUnit("tokens")
                        .description("prompt tokens of the prefix cache's hits read back from its disk tier")
                        .register(registry);
                Gauge.builder("epic.prefix.cache.disk.usage", p.disk(), PrefixDisk::storedBytes).baseUnit("bytes")
                        .description("bytes of block files in the prefix cache's disk tier").register(registry);
                FunctionCounter.builder("epic.prefix.cache.disk.skipped.writes", p.disk(), PrefixDisk::skippedWrites)
                        .description("blocks not written to the disk tier because its writes were behind")
                        .register(registry);
            }
        }
        return new ServingMetrics(registry);
    }

    /** The request's first token went out {@code nanos} after it arrived. */
    public void firstToken(long nanos) {
        ttft.record(nanos, TimeUnit.NANOSECONDS);
    }

    /** The client cancelled the request (or the server stopped): counted, but not in the latencies. */
    public void cancelled() {
        finished("cancelled");
    }

    /**
     * The request finished: {@code latencyNanos} after arrival, {@code firstTokenNanos} after which
     * came its first token (negative: none), with these token counts and finish reason.
     */
    public void finished(long latencyNanos, long firstTokenNanos, int prompt, int generated, String reason) {
        if (reason.equals("cancelled")) {
            cancelled();
            return;
        }
        e2e.record(latencyNanos, TimeUnit.NANOSECONDS);
        promptTokens.increment(prompt);
        generationTokens.increment(generated);
        if (generated > 1 && firstTokenNanos >= 0) {
            perOutputToken.record((latencyNanos - firstTokenNanos) / (generated - 1), TimeUnit.NANOSECONDS);
        }
        finished(reason);
    }

    /** The request failed with gRPC status {@code code} after it was accepted. */
    public void failed(String code) {
        finished("error_" + code.toLowerCase(java.util.Locale.ROOT));
    }

    private void finished(String reason) {
        Counter.builder("epic.requests.finished").tag("reason", reason).description("requests by how they finished")
                .register(registry).increment();
    }
}
