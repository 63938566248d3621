package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.ModelInfoResponse;
import dev.epic.proto.StatsResponse;
import dev.epic.proto.WorkerAnnouncement;
import java.util.List;
import java.util.stream.StreamSupport;
import org.junit.jupiter.api.Test;

/** `epic status` lists workers in id order, however the coordinator's routing table holds them. */
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

    private static List<String> ids(JsonNode workers) {
        return StreamSupport.stream(workers.spliterator(), false).map(w -> w.get("id").asText()).toList();
    }
}
