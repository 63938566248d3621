package dev.epic.transport;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import java.time.Duration;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.test.TestingServer;
import org.junit.jupiter.api.Test;

/** A worker's ZooKeeper node, against a real (embedded) ZooKeeper that also goes away. */
class WorkerRegistrationTest {
    private static WorkerAnnouncement announcement() {
        return WorkerAnnouncement.newBuilder().setWorkerId("w-1").setAddress("127.0.0.1:1").setPid(1)
                .setProtocolVersion(Protocol.VERSION).addExperts(0)
                .setFingerprint(ModelFingerprint.newBuilder().setName("m").setSha256("0".repeat(64))).build();
    }

    @Test
    void closingDeletesTheNode() throws Exception {
        try (TestingServer server = new TestingServer(true);
             CuratorFramework zk = WorkerRegistration.connect(server.getConnectString(), 4000)) {
            WorkerRegistration r = WorkerRegistration.register(zk, "/epic/t/workers", announcement(), 10_000);
            assertNotNull(zk.checkExists().forPath("/epic/t/workers/w-1"));
            r.close();
            assertNull(zk.checkExists().forPath("/epic/t/workers/w-1"));
        }
    }

    /**
     * With ZooKeeper gone, Curator retries the delete for minutes; a worker stopping then (SIGTERM)
     * hung until its pod was killed. Deregistering gives up after a bounded wait instead.
     */
    @Test
    void closingWithZooKeeperGoneDoesNotHang() throws Exception {
        try (TestingServer server = new TestingServer(true)) {
            CuratorFramework zk = WorkerRegistration.connect(server.getConnectString(), 4000);
            WorkerRegistration r = WorkerRegistration.register(zk, "/epic/t/workers", announcement(), 10_000);
            server.stop();
            assertTimeoutPreemptively(Duration.ofMillis(WorkerRegistration.CLOSE_WAIT_MILLIS + 10_000), () -> {
                r.close();
                zk.close();
            });
        }
    }
}
