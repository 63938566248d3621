package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.WorkerAnnouncement;
import java.util.List;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;

/** What `epic status` reports: workers in id order, however the coordinator's routing table holds them, and KV cache use. */
class StatusReportTest {
    private static WorkerAnnouncement worker(String id, int expert) {
        return WorkerAnnouncement.newBuilder().setWorkerId(id).setAddress("127.0.0.1:" + (1000 + expert))
                .addExperts(expert).build();
    }

    @Test
    void workersComeInIdOrder() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3)
                .addExpertWorkers(worker("w2", 2)).addExpertWorkers(worker("w0", 0)).addExpertWorkers(worker("w1", 1))
                .addAttentionWorkers(worker("a1", 0)).addAttentionWorkers(worker("a0", 0))
                .build();
        JsonNode report = StatusCommand.report(info, StatsResponse.getDefaultInstance(), "SERVING");
        assertEquals(List.of("w0", "w1", "w2"), ids(report.get("expert_workers")));
        assertEquals(List.of("a0", "a1"), ids(report.get("attention_workers")));
    }

    /** The model line ends with the system_fingerprint responses carry, when the coordinator sends one. */
    @Test
    void theSystemFingerprintIsShown() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3).setMaxContext(4096).setSystemFingerprint("fp_0123456789ab").build();
        var report = StatusCommand.report(info, StatsResponse.getDefaultInstance(), "SERVING");
        assertEquals("fp_0123456789ab", report.get("model").get("system_fingerprint").asText());
        String summary = StatusCommand.summary(report);
        assertTrue(summary.contains("context 4096, system_fingerprint fp_0123456789ab"), summary);
        String none = StatusCommand.summary(StatusCommand.report(info.toBuilder().clearSystemFingerprint().build(),
                StatsResponse.getDefaultInstance(), "SERVING"));
        assertTrue(none.contains("context 4096" + System.lineSeparator()), none);
    }

    /** A coordinator still warming up says so beside its NOT_SERVING; one that is not, nothing. */
    @Test
    void aWarmUpUnderWayIsShown() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3).build();
        var warming = StatusCommand.report(info, StatsResponse.newBuilder().setWarmingUp(true).build(), "NOT_SERVING");
        assertTrue(warming.get("warming_up").asBoolean());
        String summary = StatusCommand.summary(warming);
        assertTrue(summary.contains("health     NOT_SERVING (warming up: forward passes compile the kernels"), summary);
        String done = StatusCommand.summary(StatusCommand.report(info, StatsResponse.getDefaultInstance(), "SERVING"));
        assertTrue(done.contains("health     SERVING" + System.lineSeparator()), done);
    }

    /** The report shows the KV cache held against its budget, the preemptions, and each attention worker's budget. */
    @Test
    void kvCacheUseAndBudgetsAreShown() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3)
                .addAttentionWorkers(worker("a0", 0).toBuilder().setCapacity(16).setKvCacheBytes(2L << 20))
                .addAttentionWorkers(worker("a1", 0).toBuilder().setCapacity(8).setKvCacheBytes(4L << 20)
                        .setKvCacheDtype("bf16"))
                .build();
        StatsResponse stats = StatsResponse.newBuilder().setKvCacheBytes(3L << 20).setKvCacheBudgetBytes(4L << 20)
                .setPreemptions(2).build();
        String summary = StatusCommand.summary(StatusCommand.report(info, stats, "SERVING"));
        assertTrue(summary.contains("up to 16 sequences in 2.0 MiB of KV cache"), summary);
        assertTrue(summary.contains("up to 8 sequences in 4.0 MiB of bf16 KV cache"), summary);
        assertTrue(
                summary.contains("kv cache   3.0 MiB held of a 4.0 MiB budget; 2 preemptions"), summary);
        String bf16 = StatusCommand.summary(StatusCommand.report(info, stats.toBuilder().setKvCacheDtype("bf16").build(),
                "SERVING"));
        assertTrue(bf16.contains("kv cache   3.0 MiB held of a 4.0 MiB budget, stored in bf16; 2 preemptions"), bf16);
        String none = StatusCommand.summary(StatusCommand.report(info, StatsResponse.getDefaultInstance(), "SERVING"));
        assertTrue(none.contains("0.0 MiB held of no known budget; 0 preemptions"), none);
    }

    /** With speculative decoding on, the report says how many drafts were fed and kept; off, nothing. */
    @Test
    void speculativeDecodingIsShownWhenOn() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3).build();
        StatsResponse stats = StatsResponse.newBuilder().setNumSpeculativeTokens(4).setDraftTokens(200)
                .setAcceptedDraftTokens(150).build();
        var report = StatusCommand.report(info, stats, "SERVING");
        assertEquals(150, report.get("scheduler").get("accepted_draft_tokens").asLong());
        String summary = StatusCommand.summary(report);
        assertTrue(summary.contains("speculate  up to 4 draft tokens a step (prompt lookup); 200 drafted, 150 accepted (75%)"),
                summary);
        String mtp = StatusCommand.summary(StatusCommand.report(info, StatsResponse.newBuilder().setNumSpeculativeTokens(1)
                .setSpeculativeMethod("mtp").setDraftTokens(10).setAcceptedDraftTokens(8).build(), "SERVING"));
        assertTrue(mtp.contains("speculate  up to 1 draft tokens a step (the model's MTP layer); 10 drafted, 8 accepted (80%)"),
                mtp);
        String off = StatusCommand.summary(StatusCommand.report(info, StatsResponse.getDefaultInstance(), "SERVING"));
        assertTrue(!off.contains("speculate"), off);
        // Attention workers that run the MTP layer's attention (what a coordinator drafting with it takes) say so.
        ModelInfoResponse withWorkers = info.toBuilder()
                .addAttentionWorkers(worker("a0", 0).toBuilder().setCapacity(16).setMtpLayer(true))
                .addAttentionWorkers(worker("a1", 0).toBuilder().setCapacity(16)).build();
        var workers = StatusCommand.report(withWorkers, StatsResponse.getDefaultInstance(), "SERVING");
        assertTrue(workers.get("attention_workers").get(0).get("mtp_layer").asBoolean());
        assertTrue(!workers.get("attention_workers").get(1).get("mtp_layer").asBoolean());
        String lines = StatusCommand.summary(workers);
        assertTrue(!lines.contains("by priority"), lines);
        assertEquals("fcfs", workers.get("scheduler").get("scheduling_policy").asText());
        String byPriority = StatusCommand.summary(StatusCommand.report(info,
                StatsResponse.newBuilder().setSchedulingPolicy("priority").build(), "SERVING"));
        assertTrue(byPriority.contains("0 waiting (by priority)"), byPriority);
        assertTrue(!lines.contains("two-batch overlap"), lines);
        var overlapped = StatusCommand.report(info, StatsResponse.newBuilder().setTwoBatchOverlap(true).build(), "SERVING");
        assertTrue(overlapped.get("scheduler").get("two_batch_overlap").asBoolean());
        String overlap = StatusCommand.summary(overlapped);
        assertTrue(overlap.contains("0 waiting (two-batch overlap); "), overlap);
        assertTrue(lines.contains("up to 16 sequences, MTP layer"), lines);
        assertEquals(1, lines.split("MTP layer\\n", -1).length - 1, lines);
    }

    /**
     * Expert workers hosting the MTP layer's experts say so, and a coordinator drafting with the layer
     * says where its routed experts run: on the workers when those announcing it cover every expert.
     */
    @Test
    void whereTheMtpLayersExpertsRunIsShown() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3)
                .addExpertWorkers(worker("w0", 0).toBuilder().addExperts(1).setMtpLayer(true))
                .addExpertWorkers(worker("w1", 2))
                .build();
        StatsResponse stats = StatsResponse.newBuilder().setRemoteExperts(true).setNumSpeculativeTokens(1)
                .setSpeculativeMethod("mtp").build();
        var partial = StatusCommand.report(info, stats, "SERVING");
        assertTrue(partial.get("expert_workers").get(0).get("mtp_layer").asBoolean());
        assertTrue(!partial.get("expert_workers").get(1).get("mtp_layer").asBoolean());
        assertEquals("2", partial.get("coverage").get("mtp_layer_missing").asText());
        String lines = StatusCommand.summary(partial);
        assertTrue(lines.contains("experts 0-1, MTP layer"), lines);
        assertTrue(lines.contains("its routed experts in the coordinator (no expert worker announces the layer for 2)"),
                lines);
        ModelInfoResponse all = info.toBuilder().setExpertWorkers(1,
                worker("w1", 2).toBuilder().setMtpLayer(true)).build();
        String covered = StatusCommand.summary(StatusCommand.report(all, stats, "SERVING"));
        assertTrue(covered.contains("(the model's MTP layer); 0 drafted, 0 accepted; its routed experts on the expert "
                + "workers"), covered);
        String plain = StatusCommand.summary(StatusCommand.report(all, StatsResponse.newBuilder().setRemoteExperts(true)
                .build(), "SERVING"));
        assertTrue(!plain.contains("its routed experts"), plain);
    }

    /** The prefix cache's use and hit rate, where it lives, and each attention worker's prefix budget; off when off. */
    @Test
    void prefixCachingIsShown() {
        ModelInfoResponse info = ModelInfoResponse.newBuilder()
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("a".repeat(64)))
                .setNumRoutedExperts(3)
                .addAttentionWorkers(worker("a0", 0).toBuilder().setCapacity(16).setPrefixCacheBytes(8L << 20))
                .build();
        StatsResponse stats = StatsResponse.newBuilder().setRemoteAttention(true).setPrefixCache(true)
                .setPrefixCacheBytes(3L << 20).setPrefixQueriedTokens(4000).setPrefixHitTokens(3000).build();
        var report = StatusCommand.report(info, stats, "SERVING");
        assertEquals(3000, report.get("prefix_cache").get("hit_tokens").asLong());
        String summary = StatusCommand.summary(report);
        assertTrue(summary.contains("prefix     3.0 MiB kept on the attention workers; 3000 of 4000 prompt tokens found "
                + "cached (75%)"), summary);
        assertTrue(summary.contains("up to 16 sequences, prefix blocks up to 8.0 MiB per coordinator"), summary);
        assertTrue(!summary.contains("disk tier"), summary);
        String off = StatusCommand.summary(StatusCommand.report(info, StatsResponse.getDefaultInstance(), "SERVING"));
        assertTrue(off.contains("prefix     off"), off);

        StatsResponse disk = StatsResponse.newBuilder().setPrefixCache(true).setPrefixCacheBytes(3L << 20)
                .setPrefixQueriedTokens(4000).setPrefixHitTokens(3000).setPrefixDisk(true).setPrefixDiskBytes(40L << 20)
                .setPrefixDiskHitTokens(1200).build();
        var withDisk = StatusCommand.report(info, disk, "SERVING");
        assertEquals(1200, withDisk.get("prefix_cache").get("disk").get("hit_tokens").asLong());
        String diskSummary = StatusCommand.summary(withDisk);
        assertTrue(diskSummary.contains("disk tier: 40.0 MiB of blocks; 1200 of those tokens read back from it"),
                diskSummary);
    }

    private static List<String> ids(JsonNode workers) {
        return StreamSupport.stream(workers.spliterator(), false).map(w -> w.get("id").asText()).toList();
    }
}
