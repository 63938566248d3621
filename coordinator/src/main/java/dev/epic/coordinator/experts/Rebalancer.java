package dev.epic.coordinator.experts;

import dev.epic.proto.LayerExperts;
import dev.epic.proto.WorkerAnnouncement;
import dev.epic.transport.Placements;
import dev.epic.transport.ZkLayout;
import io.micrometer.core.instrument.Counter;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.recipes.leader.LeaderLatch;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.data.Stat;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Online expert rebalancing. Every period, the coordinator elected among those of the cluster
 * (Curator's LeaderLatch) reads how many rows each expert of each layer received, plans with
 * {@link Eplb} which extra experts the workers with redundant slots should host, and publishes the
 * plan at {@link ZkLayout#placementPath} when it balances the load better than the placement in
 * force. Workers load their new experts and announce them; every coordinator's routing table then
 * spreads those experts' rows over the replicas. Nothing restarts and no request waits: until a
 * worker announces an expert, its rows go where they went before.
 */
final class Rebalancer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(Rebalancer.class);
    /**
     * A plan must cut the busiest worker's excess over the mean by this fraction, and by at least
     * {@link #MIN_STEP} of the mean, to be worth moving weights for: replanning every window for a
     * point of balance would only churn the workers' memory.
     */
    private static final double MIN_GAIN = 0.1;
    private static final double MIN_STEP = 0.01;
    /**
     * A layer is planned only once its averaged load holds this many rows per expert: fewer, and the
     * counts are mostly noise, so a plan would chase the last few steps.
     */
    private static final int MIN_ROWS_PER_EXPERT = 8;

    private final CuratorFramework zk;
    private final String path;
    private final RemoteExperts experts;
    private final LeaderLatch latch;
    private final ScheduledExecutorService timer;
    private final Counter published;
    private volatile double imbalance = 1;
    /** Rows per [layer][expert], each window's added to half the last: a moving average, so plans do not flap. */
    private long[][] load = new long[0][];

    Rebalancer(CuratorFramework zk, String cluster, RemoteExperts experts, Duration period, MeterRegistry registry) {
        this.zk = zk;
        this.path = ZkLayout.placementPath(cluster);
        this.experts = experts;
        this.latch = new LeaderLatch(zk, ZkLayout.rebalancerPath(cluster));
        try {
            latch.start();
        } catch (Exception e) {
            throw new IllegalStateException("cannot join the rebalancer election: " + e, e);
        }
        Gauge.builder("epic.experts.imbalance", this, r -> r.imbalance)
                .description("busiest expert worker's rows over the mean, worst MoE layer, moving average of windows")
                .register(registry);
        this.published = Counter.builder("epic.experts.placements").description("expert placements published")
                .register(registry);
        this.timer = Executors.newSingleThreadScheduledExecutor(r -> Thread.ofPlatform().daemon(true)
                .name("epic-rebalancer").unstarted(r));
        long ms = period.toMillis();
        timer.scheduleWithFixedDelay(this::runOnce, ms, ms, TimeUnit.MILLISECONDS);
    }

    private void runOnce() {
        try {
            rebalance();
        } catch (Exception | Error e) {
            log.warn("rebalancing failed: {}", e.toString());
        }
    }

    /**
     * One round: fold the load since the last round into the moving average, and as the elected
     * coordinator publish a better placement if there is one. Returns the published plan, or null.
     */
    synchronized Eplb.Plan rebalance() throws Exception {
        long[][] window = experts.takeLoad();
        long[][] decayed = new long[window.length][];
        for (int l = 0; l < window.length; l++) {
            decayed[l] = window[l].clone();
            for (int e = 0; l < load.length && e < Math.min(load[l].length, decayed[l].length); e++) {
                decayed[l][e] += load[l][e] / 2;
            }
        }
        load = decayed;
        long[][] planned = new long[decayed.length][];
        boolean enough = false; // some layer has the rows to be planned
        for (int l = 0; l < decayed.length; l++) {
            long total = Arrays.stream(decayed[l]).sum();
            boolean planable = total >= (long) MIN_ROWS_PER_EXPERT * decayed[l].length && total > 0;
            planned[l] = planable ? decayed[l] : new long[decayed[l].length];
            enough |= planable;
        }
        RoutingTable table = experts.table();
        List<Eplb.Worker> workers = new ArrayList<>();
        List<Map<Integer, int[]>> current = new ArrayList<>();
        boolean slots = false;
        long now = System.nanoTime();
        for (WorkerEndpoint w : table.workers()) {
            if (!w.isLive(now) || !w.isHealthy()) {
                continue; // a failing worker would never announce what it is given, nor get rows for it
            }
            WorkerAnnouncement a = w.announcement();
            workers.add(new Eplb.Worker(a.getWorkerId(),
                    a.getExpertsList().stream().mapToInt(Integer::intValue).toArray(), a.getRedundantSlots()));
            Map<Integer, int[]> extras = new HashMap<>();
            for (LayerExperts l : a.getRedundantList()) {
                extras.put(l.getLayer(), l.getExpertsList().stream().mapToInt(Integer::intValue).toArray());
            }
            current.add(extras);
            slots |= a.getRedundantSlots() > 0;
        }
        imbalance = Eplb.imbalance(decayed, workers, current);
        if (!slots || !enough || !latch.hasLeadership()) {
            return null;
        }
        // The plan and the placement in force are judged on the same load: the layers with enough rows.
        double inForce = Eplb.imbalance(planned, workers, current);
        Eplb.Plan plan = Eplb.plan(planned, workers);
        double after = plan.imbalanceAfter();
        double gain = inForce - after;
        if (gain < MIN_STEP || gain < MIN_GAIN * (inForce - 1)) {
            return null; // the placement in force is about as good (or nothing was routed)
        }
        // Written only over the placement read (znode version check): a second leader during a
        // partition loses the race instead of overwriting; workers order placements by the node's mzxid.
        Stat stat = new Stat();
        long version = 1;
        try {
            version = Placements.fromJson(zk.getData().storingStatIn(stat).forPath(path)).version() + 1;
            zk.setData().withVersion(stat.getVersion())
                    .forPath(path, Placements.toJson(new Placements.Placement(version, plan.extras())));
        } catch (KeeperException.NoNodeException e) {
            try {
                zk.create().creatingParentsIfNeeded()
                        .forPath(path, Placements.toJson(new Placements.Placement(version, plan.extras())));
            } catch (KeeperException.NodeExistsException raced) {
                return null;
            }
        } catch (KeeperException.BadVersionException raced) {
            return null;
        }
        published.increment();
        log.info("expert placement {}: busiest worker at {}x the mean load (worst layer; {}x without redundant "
                + "experts), planned {}x; {} redundant expert(s) placed", version, String.format("%.2f", inForce),
                String.format("%.2f", plan.imbalanceBefore()), String.format("%.2f", after),
                plan.extras().values().stream().flatMap(m -> m.values().stream()).mapToInt(a -> a.length).sum());
        return plan;
    }

    /** Waits (bounded) until this coordinator is the one that rebalances; false if it is not by then. */
    boolean awaitLeadership(Duration timeout) throws InterruptedException {
        return latch.await(timeout.toMillis(), TimeUnit.MILLISECONDS);
    }

    @Override
    public void close() {
        timer.shutdownNow();
        try {
            timer.awaitTermination(10, TimeUnit.SECONDS); // a round being published ends before the latch goes
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        try {
            latch.close();
        } catch (Exception e) {
            log.debug("leaving the rebalancer election: {}", e.toString());
        }
    }
}
