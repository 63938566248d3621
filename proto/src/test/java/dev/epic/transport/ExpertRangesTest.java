package dev.epic.transport;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import org.junit.jupiter.api.Test;

class ExpertRangesTest {
    @Test
    void parsesAndFormatsRanges() {
        int[] ids = ExpertRanges.parse("0-3, 10,200-201,2", 256);
        assertArrayEquals(new int[] {0, 1, 2, 3, 10, 200, 201}, ids);
        assertEquals("0-3,10,200-201", ExpertRanges.format(ids));
        assertThrows(IllegalArgumentException.class, () -> ExpertRanges.parse("0-256", 256));
        assertThrows(IllegalArgumentException.class, () -> ExpertRanges.parse("5-2", 256));
        assertThrows(IllegalArgumentException.class, () -> ExpertRanges.parse("a-b", 256));
        assertThrows(IllegalArgumentException.class, () -> ExpertRanges.parse("", 256));
    }

    @Test
    void announcementJsonRoundTrips() {
        WorkerAnnouncement a = WorkerAnnouncement.newBuilder().setWorkerId("w1").setAddress("127.0.0.1:5000")
                .addExperts(0).addExperts(7)
                .setFingerprint(ModelFingerprint.newBuilder().setName("tiny").setSha256("ab12"))
                .setCapacity(64).setPid(42).setProtocolVersion(Protocol.VERSION).build();
        assertEquals(a, Announcements.fromJson(Announcements.toJson(a)));
        var e = assertThrows(IllegalArgumentException.class, () -> Announcements.fromJson("{\"workerId\":\"x\"}".getBytes()));
        assertEquals("worker announcement lacks the string field 'address'", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Announcements.fromJson("not json".getBytes()));
    }
}
