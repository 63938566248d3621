package dev.epic.attention;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Protocol;
import dev.epic.transport.WorkerServer;
import dev.epic.transport.ZkLayout;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running attention worker: gRPC AttentionService on a port, announced in ZooKeeper under
 * {@code /epic/<cluster>/attention/<id>} once it can serve (the announcement's capacity is its
 * maximum number of sequences), with a health service and a graceful drain ({@link WorkerServer}).
 * Sequences still cached here when it stops end with it.
 */
public final class AttentionWorker implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(AttentionWorker.class);

    /**
     * Where to serve and announce. port 0 picks a free port.
     *
     * @param kvCacheBytes KV cache the sequences here may hold together; beyond it new sequences (and
     *                     sequences that would grow past it) are refused as when the worker is full
     * @param weights      the format the attention weights compute in (--weights, as
     *                     {@code WeightFormat.effective} names it), announced so that a coordinator with
     *                     another refuses this worker; "" announces none
     * @param prefixCacheBytes prompt prefix blocks one coordinator's stream may keep here (announced;
     *                     0: coordinators keep no prefixes here)
     * @param kvCacheDtype how the caches here store positions (announced: coordinators with another refuse)
     */
    public record Settings(String host, int port, String zkConnect, String cluster, String workerId, int maxSequences,
            int zkSessionTimeoutMillis, long drainMillis, int metricsPort, long kvCacheBytes, String weights,
            long prefixCacheBytes, KvCacheDtype kvCacheDtype) {
        public Settings(String host, int port, String zkConnect, String cluster, String workerId, int maxSequences,
                int zkSessionTimeoutMillis, long drainMillis, int metricsPort, long kvCacheBytes) {
            this(host, port, zkConnect, cluster, workerId, maxSequences, zkSessionTimeoutMillis, drainMillis,
                    metricsPort, kvCacheBytes, "", defaultPrefixCacheBytes(), KvCacheDtype.FP32);
        }

        public Settings withWeights(String format) {
            return new Settings(host, port, zkConnect, cluster, workerId, maxSequences, zkSessionTimeoutMillis,
                    drainMillis, metricsPort, kvCacheBytes, format, prefixCacheBytes, kvCacheDtype);
        }

        /** Bytes of prompt prefix blocks one coordinator may keep here (0: no prefix caching here). */
        public Settings withPrefixCacheBytes(long bytes) {
            return new Settings(host, port, zkConnect, cluster, workerId, maxSequences, zkSessionTimeoutMillis,
                    drainMillis, metricsPort, kvCacheBytes, weights, bytes, kvCacheDtype);
        }

        public Settings withKvCacheDtype(KvCacheDtype dtype) {
            return new Settings(host, port, zkConnect, cluster, workerId, maxSequences, zkSessionTimeoutMillis,
                    drainMillis, metricsPort, kvCacheBytes, weights, prefixCacheBytes, dtype);
        }

        /** With the default KV cache budget. */
        public Settings(String host, int port, String zkConnect, String cluster, String workerId, int maxSequences,
                int zkSessionTimeoutMillis, long drainMillis, int metricsPort) {
            this(host, port, zkConnect, cluster, workerId, maxSequences, zkSessionTimeoutMillis, drainMillis,
                    metricsPort, defaultKvCacheBytes());
        }
    }

    /** A quarter of the JVM's maximum heap, as the coordinator's own prefix cache. */
    public static long defaultPrefixCacheBytes() {
        return Runtime.getRuntime().maxMemory() / 4;
    }

    public static long defaultKvCacheBytes() {
        return dev.epic.model.HeapKvCache.defaultBudgetBytes();
    }

    private final WorkerServer server;
    private final SequenceCaches caches;

    private AttentionWorker(WorkerServer server, SequenceCaches caches) {
        this.server = server;
        this.caches = caches;
    }

    /** Starts serving {@code layers} (already opened) and registers in ZooKeeper. */
    public static AttentionWorker start(AttentionLayers layers, CheckpointFingerprint fingerprint, Settings s)
            throws Exception {
        SequenceCaches caches = new SequenceCaches(layers, s.maxSequences(), s.kvCacheBytes(), s.prefixCacheBytes(),
                s.kvCacheDtype());
        AttentionServiceImpl service = new AttentionServiceImpl(layers, caches, fingerprint);
        WorkerServer server = WorkerServer.start(
                new WorkerServer.Settings(s.host(), s.port(), s.zkConnect(), s.workerId(), s.zkSessionTimeoutMillis(),
                        s.drainMillis(), s.metricsPort(), service.maxInboundBytes()),
                "a", ZkLayout.attentionWorkersPath(s.cluster()), service, service::inFlight, service::bindMetrics,
                (id, address) -> {
                    service.workerId(id);
                    return WorkerAnnouncement.newBuilder()
                            .setWorkerId(id)
                            .setAddress(address)
                            .setFingerprint(ModelFingerprint.newBuilder().setName(fingerprint.name())
                                    .setSha256(fingerprint.sha256()))
                            .setCapacity(s.maxSequences())
                            .setKvCacheBytes(s.kvCacheBytes())
                            .setPrefixCacheBytes(s.prefixCacheBytes())
                            .setPid(ProcessHandle.current().pid())
                            .setProtocolVersion(Protocol.VERSION)
                            .setWeights(s.weights())
                            .setKvCacheDtype(s.kvCacheDtype().id())
                            .setMtpLayer(layers.hasMtpLayer())
                            .build();
                });
        log.info("attention worker {} serving the attention of {} layers{} of {} ({}) on {}, up to {} sequences, "
                + "{} KV caches", server.workerId(), layers.count(), layers.hasMtpLayer() ? " and the MTP layer" : "",
                fingerprint.name(), fingerprint.shortHash(),
                server.address(), s.maxSequences(), s.kvCacheDtype().id());
        return new AttentionWorker(server, caches);
    }

    public String address() {
        return server.address();
    }

    public String workerId() {
        return server.workerId();
    }

    /** The port serving Prometheus /metrics; 0 when off. */
    public int metricsPort() {
        return server.metricsPort();
    }

    /** Sequences whose caches are held here now. */
    public int cachedSequences() {
        return caches.size();
    }

    /** Bytes of prompt prefix blocks kept here now (all coordinators). */
    public long prefixCacheBytes() {
        return caches.prefixBytes();
    }

    /** Sequences refused for lack of room since start, once per refusal. */
    public long refusedSequences() {
        return caches.refusedSequences();
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /** Stops serving at once, as a crash would; its ZooKeeper node stays until {@link #close()} (failover tests). */
    public void kill() {
        server.kill();
    }

    /** Graceful drain: deregister, finish in-flight messages, stop. Idempotent. */
    @Override
    public void close() {
        server.close();
    }
}
