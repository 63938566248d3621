package dev.epic.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;
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
     * Closing says first that the worker leaves on purpose, so a coordinator's watch reports it as
     * left (no grace for a lost session), then deletes the node.
     */
    @Test
    void closingMarksTheNodeLeavingBeforeDeletingIt() throws Exception {
        try (TestingServer server = new TestingServer(true);
             CuratorFramework zk = WorkerRegistration.connect(server.getConnectString(), 4000)) {
            java.util.List<String> events = java.util.Collections.synchronizedList(new java.util.ArrayList<>());
            try (WorkerWatch watch = new WorkerWatch(zk, "/epic/t/workers", "expert worker", "0".repeat(64), "m",
                    new WorkerWatch.Listener() {
                        @Override
                        public void upsert(String path, WorkerAnnouncement a) {
                            events.add("upsert");
                        }

                        @Override
                        public void remove(String path) {
                            events.add("remove");
                        }

                        @Override
                        public void left(String path) {
                            events.add("left");
                        }
                    })) {
                WorkerRegistration r = WorkerRegistration.register(zk, "/epic/t/workers", announcement(), 10_000);
                for (int i = 0; i < 500 && !events.contains("upsert"); i++) {
                    Thread.sleep(10);
                }
                r.close();
                for (int i = 0; i < 500 && !events.contains("remove"); i++) {
                    Thread.sleep(10);
                }
                assertEquals(java.util.List.of("upsert", "left", "remove"), events);
            }
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
