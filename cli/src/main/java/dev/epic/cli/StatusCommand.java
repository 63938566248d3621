package dev.epic.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.coordinator.CoordinatorServer;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.LayerExperts;
import dev.epic.proto.ModelInfoRequest;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.StatsRequest;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Announcements;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.ModelIdentity;
import io.grpc.ManagedChannel;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import java.io.PrintWriter;
import java.util.Arrays;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import java.util.stream.IntStream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code epic status}: what an operator checks after adding or removing workers: is the coordinator
 * serving, which worker hosts which experts, does every expert have a live worker (and how many),
 * and how busy the scheduler is.
 */
@Command(name = "status", mixinStandardHelpOptions = true,
        description = {"Show a running cluster: health, model, expert workers and the experts each hosts, expert",
            "coverage and replicas, attention workers, the scheduler's load and its KV cache. Exit code 0 when serving, 3 when",
            "the coordinator answers but is not serving (e.g. experts without a live worker), 1 when unreachable or",
            "not a coordinator."})
public final class StatusCommand implements Callable<Integer> {
    static final int NOT_SERVING = 3;

    @Spec
    CommandSpec spec;

    @Option(names = "--target", required = true, paramLabel = "HOST:PORT", description = "a running coordinator")
    String target;

    @Option(names = "--json", description = "print one JSON object instead of a summary")
    boolean json;

    @Override
    public Integer call() {
        ManagedChannel channel = Channels.open(target);
        PrintWriter out = spec.commandLine().getOut();
        try {
            var api = GenerationServiceGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS);
            ModelInfoResponse info = api.modelInfo(ModelInfoRequest.getDefaultInstance());
            StatsResponse stats = api.stats(StatsRequest.getDefaultInstance());
            String health;
            try {
                health = HealthGrpc.newBlockingStub(channel).withDeadlineAfter(10, TimeUnit.SECONDS)
                        .check(HealthCheckRequest.newBuilder().setService(CoordinatorServer.SERVICE).build())
                        .getStatus().name();
            } catch (StatusRuntimeException e) {
                if (e.getStatus().getCode() != Status.Code.NOT_FOUND) {
                    throw e;
                }
                health = "UNKNOWN"; // just started: the first health check has not run yet
            }
            ObjectNode report = report(info, stats, health);
            out.println(json ? report.toString() : summary(report));
            out.flush();
            return health.equals("SERVING") ? 0 : NOT_SERVING;
        } catch (StatusRuntimeException e) {
            Status.Code code = e.getStatus().getCode();
            // Something that answers but not as a coordinator (a worker: UNIMPLEMENTED; an HTTP port: INTERNAL).
            boolean notACoordinator = code == Status.Code.UNIMPLEMENTED || code == Status.Code.INTERNAL
                    || code == Status.Code.UNKNOWN;
            spec.commandLine().getErr().println("epic status: " + target + ": "
                    + (notACoordinator ? "not an EPIC coordinator" + (code == Status.Code.UNIMPLEMENTED ? "" : ", or one that "
                            + "failed to answer") + " (" + dev.epic.transport.StatusText.of(e.getStatus()) + ")"
                            : dev.epic.transport.StatusText.of(e.getStatus())));
            return code == Status.Code.UNAVAILABLE || code == Status.Code.DEADLINE_EXCEEDED || notACoordinator
                    ? 1 : NOT_SERVING;
        } finally {
            channel.shutdownNow();
        }
    }

    static ObjectNode report(ModelInfoResponse info, StatsResponse stats, String health) {
        ObjectNode o = new ObjectMapper().createObjectNode().put("health", health)
                .put("warming_up", stats.getWarmingUp());
        o.putObject("model").put("name", info.getFingerprint().getName())
                .put("sha256", info.getFingerprint().getSha256()).put("type", info.getModelType())
                .put("layers", info.getNumLayers()).put("routed_experts", info.getNumRoutedExperts())
                .put("experts_per_token", info.getExpertsPerToken()).put("max_context", info.getMaxContext())
                .put("system_fingerprint", info.getSystemFingerprint());
        int experts = info.getNumRoutedExperts();
        int[] replicas = new int[experts];
        int[] mtpReplicas = new int[experts];
        ArrayNode workers = o.putArray("expert_workers");
        for (WorkerAnnouncement w : byId(info.getExpertWorkersList())) {
            int[] ids = w.getExpertsList().stream().mapToInt(Integer::intValue).sorted().toArray();
            for (int e : ids) {
                if (e < experts) {
                    replicas[e]++;
                    mtpReplicas[e] += w.getMtpLayer() ? 1 : 0;
                }
            }
            int placed = 0;
            for (LayerExperts l : w.getRedundantList()) {
                placed += l.getExpertsCount();
            }
            workers.addObject().put("id", w.getWorkerId()).put("address", w.getAddress()).put("pid", w.getPid())
                    .put("experts", ExpertRanges.format(ids)).put("capacity", w.getCapacity())
                    .put("redundant_slots", w.getRedundantSlots()).put("redundant_placed", placed)
                    .put("down", info.getDownExpertWorkersList().contains(w.getWorkerId()))
                    .put("mtp_layer", w.getMtpLayer());
        }
        ArrayNode refused = o.putArray("refused_workers");
        for (var w : info.getRefusedWorkersList()) {
            refused.addObject().put("kind", w.getKind()).put("id", w.getWorkerId()).put("address", w.getAddress())
                    .put("reason", w.getReason());
        }
        ObjectNode coverage = o.putObject("coverage");
        if (stats.getRemoteExperts()) {
            // Missing: the coordinator's routing table, which counts only healthy workers. Replicas:
            // the announcements, which include workers in failure backoff until their session ends.
            coverage.put("remote", true).put("missing", stats.getMissingExperts())
                    .put("min_replicas", Arrays.stream(replicas).min().orElse(0))
                    .put("max_replicas", Arrays.stream(replicas).max().orElse(0))
                    // The MTP layer's experts without a worker announcing the layer (the coordinator then
                    // runs that layer's experts itself); from the announcements, as the replicas.
                    .put("mtp_layer_missing", ExpertRanges.format(
                            IntStream.range(0, experts).filter(e -> mtpReplicas[e] == 0).toArray()));
        } else {
            coverage.put("remote", false); // every expert runs in the coordinator's process
        }
        if (stats.getRemoteAttention()) {
            o.put("attention_live", stats.getAttentionLive());
        }
        ArrayNode attention = o.putArray("attention_workers");
        for (WorkerAnnouncement w : byId(info.getAttentionWorkersList())) {
            attention.addObject().put("id", w.getWorkerId()).put("address", w.getAddress()).put("pid", w.getPid())
                    .put("capacity", w.getCapacity()).put("kv_cache_bytes", w.getKvCacheBytes())
                    .put("prefix_cache_bytes", w.getPrefixCacheBytes())
                    .put("kv_cache_dtype", Announcements.kvCacheDtype(w)).put("mtp_layer", w.getMtpLayer());
        }
        double uptime = stats.getUptimeNanos() / 1e9;
        o.putObject("scheduler").put("running", stats.getRunning()).put("waiting", stats.getWaiting())
                .put("max_batch", stats.getMaxBatch()).put("uptime_s", Math.round(uptime))
                .put("scheduling_policy", stats.getSchedulingPolicy().isEmpty() ? "fcfs" : stats.getSchedulingPolicy())
                .put("two_batch_overlap", stats.getTwoBatchOverlap())
                .put("steps", stats.getSteps()).put("decode_rows", stats.getDecodeRows())
                .put("prefill_rows", stats.getPrefillRows()).put("kv_cache_bytes", stats.getKvCacheBytes())
                .put("kv_cache_budget_bytes", stats.getKvCacheBudgetBytes())
                .put("kv_cache_dtype", stats.getKvCacheDtype().isEmpty() ? "fp32" : stats.getKvCacheDtype())
                .put("preemptions", stats.getPreemptions())
                .put("num_speculative_tokens", stats.getNumSpeculativeTokens()).put("draft_tokens", stats.getDraftTokens())
                .put("speculative_method", stats.getSpeculativeMethod())
                .put("accepted_draft_tokens", stats.getAcceptedDraftTokens());
        if (stats.getPrefixCache()) {
            o.putObject("prefix_cache").put("bytes", stats.getPrefixCacheBytes())
                    .put("on_attention_workers", stats.getRemoteAttention())
                    .put("queried_tokens", stats.getPrefixQueriedTokens()).put("hit_tokens", stats.getPrefixHitTokens());
            if (stats.getPrefixDisk()) {
                ((ObjectNode) o.get("prefix_cache")).putObject("disk").put("bytes", stats.getPrefixDiskBytes())
                        .put("hit_tokens", stats.getPrefixDiskHitTokens());
            }
        }
        return o;
    }

    /** The report for a terminal. */
    static String summary(ObjectNode r) {
        StringBuilder s = new StringBuilder();
        var m = r.get("model");
        s.append(String.format("health     %s%s%n", r.get("health").asText(), r.path("warming_up").asBoolean()
                ? " (warming up: forward passes compile the kernels before the first request)" : ""));
        s.append(String.format("model      %s (%s, %s), %d layers, %d routed experts, top-%d, context %d%s%n",
                m.get("name").asText(), ModelIdentity.abbrev(m.get("sha256").asText()),
                m.get("type").asText(), m.get("layers").asInt(), m.get("routed_experts").asInt(),
                m.get("experts_per_token").asInt(), m.get("max_context").asInt(),
                m.path("system_fingerprint").asText("").isEmpty() ? ""
                        : ", system_fingerprint " + m.get("system_fingerprint").asText()));
        var c = r.get("coverage");
        if (c.get("remote").asBoolean()) {
            String missing = c.get("missing").asText();
            s.append(String.format("experts    %s; replicas per expert %d..%d%n",
                    missing.isEmpty() ? "all covered" : "NO LIVE WORKER for " + missing,
                    c.get("min_replicas").asInt(), c.get("max_replicas").asInt()));
        } else {
            s.append(String.format("experts    in the coordinator's process%n"));
        }
        for (var w : r.get("expert_workers")) {
            s.append(String.format("  expert-worker    %-18s %-22s pid %-8d %sexperts %s%s%s%n", w.get("id").asText(),
                    w.get("address").asText(), w.get("pid").asLong(),
                    w.path("down").asBoolean() ? "DOWN (failed lately; probed until it answers) " : "",
                    w.get("experts").asText(),
                    w.get("redundant_slots").asInt() > 0 ? " (" + w.get("redundant_slots").asInt() + " redundant slots per layer, "
                            + w.get("redundant_placed").asInt() + " experts placed in them over all layers)" : "",
                    w.path("mtp_layer").asBoolean() ? ", MTP layer" : ""));
        }
        if (r.has("attention_live") && !r.get("attention_live").asBoolean()) {
            s.append(String.format("attention  NO LIVE ATTENTION WORKER%n"));
        }
        for (var w : r.get("attention_workers")) {
            s.append(String.format("  attention-worker %-18s %-22s pid %-8d up to %d sequences%s%s%s%n", w.get("id").asText(),
                    w.get("address").asText(), w.get("pid").asLong(), w.get("capacity").asInt(),
                    w.path("kv_cache_bytes").asLong() > 0 ? " in " + mib(w.get("kv_cache_bytes").asLong()) + " MiB of "
                            + (w.path("kv_cache_dtype").asText("fp32").equals("fp32") ? "" : w.get("kv_cache_dtype").asText() + " ")
                            + "KV cache" : "",
                    w.path("prefix_cache_bytes").asLong() > 0
                            ? ", prefix blocks up to " + mib(w.get("prefix_cache_bytes").asLong()) + " MiB per coordinator" : "",
                    w.path("mtp_layer").asBoolean() ? ", MTP layer" : ""));
        }
        for (var w : r.path("refused_workers")) {
            s.append(String.format("  REFUSED %s %s%s: %s%n", w.get("kind").asText(), w.get("id").asText(),
                    w.get("address").asText().isEmpty() ? "" : " at " + w.get("address").asText(),
                    w.get("reason").asText()));
        }
        var q = r.get("scheduler");
        long budget = q.path("kv_cache_budget_bytes").asLong();
        s.append(String.format("scheduler  %d running of %d, %d waiting%s%s; %d steps, %d decoded and %d prefilled "
                        + "positions in %d s%n", q.get("running").asInt(), q.get("max_batch").asInt(), q.get("waiting").asInt(),
                q.path("scheduling_policy").asText("fcfs").equals("priority") ? " (by priority)" : "",
                q.path("two_batch_overlap").asBoolean() ? " (two-batch overlap)" : "",
                q.get("steps").asLong(), q.get("decode_rows").asLong(), q.get("prefill_rows").asLong(),
                q.get("uptime_s").asLong()));
        String dtype = q.path("kv_cache_dtype").asText("fp32");
        s.append(String.format("kv cache   %s MiB held of %s%s; %d preemptions", mib(q.path("kv_cache_bytes").asLong()),
                budget > 0 ? "a " + mib(budget) + " MiB budget" : "no known budget",
                dtype.equals("fp32") ? "" : ", stored in " + dtype, q.path("preemptions").asLong()));
        var prefix = r.path("prefix_cache");
        if (prefix.isMissingNode()) {
            s.append(String.format("%nprefix     off"));
        } else {
            long queried = prefix.path("queried_tokens").asLong();
            long hits = prefix.path("hit_tokens").asLong();
            s.append(String.format("%nprefix     %s MiB kept%s; %d of %d prompt tokens found cached%s",
                    mib(prefix.path("bytes").asLong()),
                    prefix.path("on_attention_workers").asBoolean() ? " on the attention workers" : "", hits, queried,
                    queried > 0 ? String.format(" (%.0f%%)", 100.0 * hits / queried) : ""));
            var disk = prefix.path("disk");
            if (!disk.isMissingNode()) {
                s.append(String.format("%n           disk tier: %s MiB of blocks; %d of those tokens read back from it",
                        mib(disk.path("bytes").asLong()), disk.path("hit_tokens").asLong()));
            }
        }
        if (q.path("num_speculative_tokens").asInt() > 0) {
            long drafted = q.path("draft_tokens").asLong();
            long accepted = q.path("accepted_draft_tokens").asLong();
            boolean mtp = "mtp".equals(q.path("speculative_method").asText());
            s.append(String.format("%nspeculate  up to %d draft tokens a step (%s); %d drafted, %d accepted%s",
                    q.path("num_speculative_tokens").asInt(), mtp ? "the model's MTP layer" : "prompt lookup",
                    drafted, accepted,
                    drafted > 0 ? String.format(" (%.0f%%)", 100.0 * accepted / drafted) : ""));
            if (mtp && c.get("remote").asBoolean()) {
                String missing = c.path("mtp_layer_missing").asText();
                s.append(missing.isEmpty() ? "; its routed experts on the expert workers"
                        : "; its routed experts in the coordinator (no expert worker announces the layer for "
                                + missing + ")");
            }
        }
        return s.toString();
    }

    private static String mib(long bytes) {
        return String.format("%.1f", bytes / 1048576.0);
    }

    /** Workers in id order, so that reports compare line by line. */
    private static java.util.List<WorkerAnnouncement> byId(java.util.List<WorkerAnnouncement> workers) {
        return workers.stream().sorted(java.util.Comparator.comparing(WorkerAnnouncement::getWorkerId)).toList();
    }
}
