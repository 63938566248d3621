package dev.epic.coordinator.experts;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class EplbTest {
    private static int[] range(int from, int to) {
        return IntStream.range(from, to).toArray();
    }

    @Test
    void aHotExpertGetsAReplicaOnTheIdleWorker() {
        long[] rows = new long[16];
        java.util.Arrays.fill(rows, 1);
        rows[3] = 100; // on worker a
        long[][] load = {new long[16], rows}; // layer 0 dense: no rows
        List<Eplb.Worker> workers = List.of(new Eplb.Worker("a", range(0, 8), 2), new Eplb.Worker("b", range(8, 16), 2));
        Eplb.Plan plan = Eplb.plan(load, workers);
        assertEquals(Map.of(1, new int[] {3}).keySet(), plan.extras().get("b").keySet());
        assertArrayEquals(new int[] {3}, plan.extras().get("b").get(1));
        assertEquals(null, plan.extras().get("a"));
        // a: 107 rows, b: 8; after: a 57, b 58 of a mean of 57.5.
        assertEquals(107 / 57.5, plan.imbalanceBefore(), 1e-9);
        assertEquals(58 / 57.5, plan.imbalanceAfter(), 1e-9);
        assertEquals(plan.imbalanceAfter(), Eplb.imbalance(load, workers, List.of(Map.of(), plan.extras().get("b"))), 1e-9);
        assertEquals(plan.imbalanceBefore(), Eplb.imbalance(load, workers, List.of(Map.of(), Map.of())), 1e-9);
    }

    @Test
    void respectsSlotsNeverDuplicatesAndNeverMakesItWorse() {
        SplittableRandom r = new SplittableRandom(5);
        int experts = 64;
        long[][] load = new long[3][experts];
        for (long[] layer : load) {
            for (int e = 0; e < experts; e++) {
                layer[e] = (long) (1000 * Math.pow(r.nextDouble(), 4)); // skewed, as real routing is
            }
        }
        List<Eplb.Worker> workers = List.of(new Eplb.Worker("a", range(0, 16), 3), new Eplb.Worker("b", range(16, 32), 3),
                new Eplb.Worker("c", range(32, 48), 0), new Eplb.Worker("d", range(48, 64), 3));
        Eplb.Plan plan = Eplb.plan(load, workers);
        assertTrue(plan.imbalanceAfter() < plan.imbalanceBefore(), plan.imbalanceBefore() + " -> " + plan.imbalanceAfter());
        for (int layer = 0; layer < 3; layer++) {
            assertTrue(plan.maxAfter()[layer] <= plan.maxBefore()[layer]);
        }
        assertEquals(null, plan.extras().get("c"), "no slots, no extras");
        for (Eplb.Worker w : workers) {
            for (int[] ids : plan.extras().getOrDefault(w.id(), Map.of()).values()) {
                assertTrue(ids.length <= w.slots());
                assertEquals(ids.length, IntStream.of(ids).distinct().count());
                for (int e : ids) {
                    assertTrue(IntStream.of(w.experts()).noneMatch(own -> own == e), w.id() + " already hosts " + e);
                }
            }
        }
    }

    /** Two workers tie as the busiest: moving one hot expert leaves the maximum, but the next move lowers it. */
    @Test
    void tiesForTheBusiestWorkerDoNotStopThePlan() {
        long[][] load = {{10, 0, 10, 0, 0, 0, 0, 0}};
        List<Eplb.Worker> workers = List.of(new Eplb.Worker("a", range(0, 2), 0), new Eplb.Worker("b", range(2, 4), 0),
                new Eplb.Worker("c", range(4, 6), 1), new Eplb.Worker("d", range(6, 8), 1));
        Eplb.Plan plan = Eplb.plan(load, workers);
        assertEquals(10.0, plan.maxBefore()[0]);
        assertEquals(5.0, plan.maxAfter()[0]);
        assertEquals(2, plan.extras().size());
    }

    @Test
    void aBalancedLoadNeedsNothing() {
        long[][] load = {{5, 5, 5, 5}};
        Eplb.Plan plan = Eplb.plan(load, List.of(new Eplb.Worker("a", range(0, 2), 2), new Eplb.Worker("b", range(2, 4), 2)));
        assertTrue(plan.extras().isEmpty());
        assertEquals(1.0, plan.imbalanceAfter(), 1e-12);
    }
}
