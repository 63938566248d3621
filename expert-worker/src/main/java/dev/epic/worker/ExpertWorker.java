package dev.epic.worker;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.LayerExperts;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.ExpertRanges;
import dev.epic.transport.Placements;
import dev.epic.transport.Protocol;
import dev.epic.transport.WorkerServer;
import dev.epic.transport.ZkLayout;
import java.util.Arrays;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.recipes.cache.ChildData;
import org.apache.curator.framework.recipes.cache.CuratorCache;
import org.apache.curator.framework.recipes.cache.CuratorCacheListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A running expert worker: gRPC ExpertService on a port, announced in ZooKeeper under
 * {@code /epic/<cluster>/workers/<id>} once it can serve, with a health service and a graceful
 * drain ({@link WorkerServer}). With redundant slots it also follows the coordinators' expert
 * placement ({@link ZkLayout#placementPath}): it loads the extra experts placed on it, then announces them.
 */
public final class ExpertWorker implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(ExpertWorker.class);

    /**
     * What to serve and where to announce it. port 0 picks a free port.
     *
     * @param redundantSlots experts per MoE layer it may host beyond its own, placed by the coordinators'
     *                       rebalancer (0: it follows no placement)
     */
    public record Settings(String host, int port, String zkConnect, String cluster, String workerId, int capacity,
            int zkSessionTimeoutMillis, long drainMillis, int metricsPort, int redundantSlots, String weights) {
        public Settings {
            weights = weights == null ? "" : weights;
            if (capacity <= 0) {
                throw new IllegalArgumentException("capacity must be positive: " + capacity);
            }
            if (redundantSlots < 0) {
                throw new IllegalArgumentException("redundant slots must be >= 0: " + redundantSlots);
            }
        }

        /** Weights not announced. */
        public Settings(String host, int port, String zkConnect, String cluster, String workerId, int capacity,
                int zkSessionTimeoutMillis, long drainMillis, int metricsPort, int redundantSlots) {
            this(host, port, zkConnect, cluster, workerId, capacity, zkSessionTimeoutMillis, drainMillis, metricsPort,
                    redundantSlots, "");
        }

        /** Without redundant slots. */
        public Settings(String host, int port, String zkConnect, String cluster, String workerId, int capacity,
                int zkSessionTimeoutMillis, long drainMillis, int metricsPort) {
            this(host, port, zkConnect, cluster, workerId, capacity, zkSessionTimeoutMillis, drainMillis, metricsPort, 0);
        }
    }

    private final WorkerServer server;
    private final CuratorCache placement; // null without redundant slots
    private final ExecutorService loader;  // applies placements, off Curator's shared event thread

    private ExpertWorker(WorkerServer server, CuratorCache placement, ExecutorService loader) {
        this.server = server;
        this.placement = placement;
        this.loader = loader;
    }

    /** Starts serving {@code shard} (already loaded) and registers in ZooKeeper. */
    public static ExpertWorker start(ExpertShard shard, CheckpointFingerprint fingerprint, int moeLayers,
            Settings s) throws Exception {
        ExpertServiceImpl service = new ExpertServiceImpl(shard, fingerprint, s.capacity(), moeLayers);
        Announcer announcer = new Announcer(shard, fingerprint, s);
        WorkerServer server = WorkerServer.start(
                new WorkerServer.Settings(s.host(), s.port(), s.zkConnect(), s.workerId(), s.zkSessionTimeoutMillis(),
                        s.drainMillis(), s.metricsPort(), service.maxInboundBytes()),
                "w", ZkLayout.workersPath(s.cluster()), service, service::inFlight, service::bindMetrics,
                (id, address) -> {
                    service.workerId(id);
                    return announcer.announcement(id, address);
                });
        log.info("expert worker {} serving experts {} of {} ({}) on {}, {} MiB of expert weights resident{}",
                server.workerId(), ExpertRanges.format(shard.experts()), fingerprint.name(), fingerprint.shortHash(),
                server.address(), String.format("%.1f", shard.residentBytes() / 1048576.0),
                s.redundantSlots() > 0 ? ", " + s.redundantSlots() + " redundant slots per layer" : "");
        if (s.redundantSlots() == 0) {
            return new ExpertWorker(server, null, null);
        }
        ExecutorService loader = Executors.newSingleThreadExecutor(r -> Thread.ofPlatform().daemon(true)
                .name("epic-placement").unstarted(r));
        CuratorCache cache = CuratorCache.build(server.zk(), ZkLayout.placementPath(s.cluster()),
                CuratorCache.Options.SINGLE_NODE_CACHE);
        cache.listenable().addListener(CuratorCacheListener.builder()
                .forCreatesAndChanges((before, after) -> announcer.follow(after, server))
                .build(), loader);
        try {
            cache.start();
        } catch (RuntimeException e) {
            loader.shutdownNow();
            server.close();
            throw e;
        }
        return new ExpertWorker(server, cache, loader);
    }

    /** Builds the announcement, and applies placements: the worker's ZooKeeper thread only. */
    private static final class Announcer {
        private final ExpertShard shard;
        private final CheckpointFingerprint fingerprint;
        private final Settings settings;
        private volatile Map<Integer, int[]> extras = Map.of();
        private long applied = -1; // the placement node's mzxid: grows with every write, even after a delete

        Announcer(ExpertShard shard, CheckpointFingerprint fingerprint, Settings settings) {
            this.shard = shard;
            this.fingerprint = fingerprint;
            this.settings = settings;
        }

        WorkerAnnouncement announcement(String id, String address) {
            WorkerAnnouncement.Builder a = WorkerAnnouncement.newBuilder()
                    .setWorkerId(id)
                    .setAddress(address)
                    .setFingerprint(ModelFingerprint.newBuilder().setName(fingerprint.name())
                            .setSha256(fingerprint.sha256()))
                    .setCapacity(settings.capacity())
                    .setPid(ProcessHandle.current().pid())
                    .setProtocolVersion(Protocol.VERSION)
                    .setRedundantSlots(settings.redundantSlots())
                    .setWeights(settings.weights())
                    .setMtpLayer(shard.hostsMtpLayer());
            for (int e : shard.experts()) {
                a.addExperts(e);
            }
            for (var l : extras.entrySet()) {
                LayerExperts.Builder b = LayerExperts.newBuilder().setLayer(l.getKey());
                Arrays.stream(l.getValue()).forEach(b::addExperts);
                a.addRedundant(b);
            }
            return a.build();
        }

        /** A new placement: load this worker's extras (at most its slots per layer), then announce them. */
        void follow(ChildData node, WorkerServer server) {
            try {
                long zxid = node.getStat().getMzxid();
                if (zxid <= applied) {
                    return;
                }
                Placements.Placement p = Placements.fromJson(node.getData());
                Map<Integer, int[]> mine = new TreeMap<>();
                for (var l : p.of(server.workerId()).entrySet()) {
                    if (shard.isMoeLayer(l.getKey())) {
                        int[] ids = l.getValue();
                        mine.put(l.getKey(), Arrays.copyOf(ids, Math.min(ids.length, settings.redundantSlots())));
                    }
                }
                if (same(mine, extras)) {
                    applied = zxid; // nothing changes here: keep the last placement's experts as they are
                    return;
                }
                long t0 = System.nanoTime();
                shard.redundant(mine);
                extras = mine;
                server.reannounce(announcement(server.workerId(), server.address()));
                applied = zxid;
                log.info("placement {}: hosting {} redundant expert(s) in {} layer(s), loaded in {} ms", p.version(),
                        mine.values().stream().mapToInt(a -> a.length).sum(), mine.size(),
                        (System.nanoTime() - t0) / 1_000_000);
            } catch (Exception | OutOfMemoryError e) {
                log.warn("could not follow expert placement (kept the last one): {}", e.toString());
            }
        }

        private static boolean same(Map<Integer, int[]> a, Map<Integer, int[]> b) {
            if (!a.keySet().equals(b.keySet())) {
                return false;
            }
            for (var e : a.entrySet()) {
                if (!Arrays.equals(e.getValue(), b.get(e.getKey()))) {
                    return false;
                }
            }
            return true;
        }
    }

    public String address() {
        return server.address();
    }

    public String workerId() {
        return server.workerId();
    }

    public void awaitTermination() throws InterruptedException {
        server.awaitTermination();
    }

    /** Stops serving at once, as a crash would; its ZooKeeper node stays until {@link #close()} (failure tests). */
    public void kill() {
        server.kill();
    }

    /**
     * Graceful drain: deregister, finish in-flight messages, stop. Idempotent. Deregistering comes
     * first, so coordinators stop sending here at once even while a placement is still loading.
     */
    @Override
    public void close() {
        server.deregister();
        if (placement != null) {
            placement.close();
            loader.shutdown();
            try {
                loader.awaitTermination(30, TimeUnit.SECONDS); // a placement being loaded finishes first
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }
        server.close();
    }
}
