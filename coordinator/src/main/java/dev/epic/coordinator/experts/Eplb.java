package dev.epic.coordinator.experts;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Expert-parallel load balancing (after DeepSeek's EPLB): given how many rows each expert of each
 * layer received lately, choose per layer which extra experts each worker should host in its
 * redundant slots, so that the busiest worker's load comes down.
 *
 * <p>A worker's load in a layer is the rows of the experts it hosts there, an expert's rows split
 * evenly over its replicas (the coordinator spreads them row by row, call by call). Per layer,
 * greedily: take the expert with the most rows per replica on the busiest worker, give one more
 * replica of it to the least loaded worker that has a free slot and does not host it yet, as long
 * as that lowers the busiest load (or, on a tie, evens the loads out).
 * DeepSeek's EPLB also repacks the experts themselves; here every worker keeps its own experts and
 * only the redundant slots move, so a plan never needs a worker to drop what it was started with.
 */
public final class Eplb {
    /** A worker as the planner sees it: its own experts (every layer) and its redundant slots per layer. */
    public record Worker(String id, int[] experts, int slots) {}

    /** Per worker id: layer -> extra experts (sorted); workers or layers without extras are absent. */
    public record Plan(Map<String, Map<Integer, int[]>> extras, double[] maxBefore, double[] maxAfter, double[] mean) {
        /** Busiest worker over the mean, worst layer, before and after (1 = perfectly balanced). */
        public double imbalanceBefore() {
            return worst(maxBefore);
        }

        public double imbalanceAfter() {
            return worst(maxAfter);
        }

        private double worst(double[] max) {
            double w = 1;
            for (int l = 0; l < max.length; l++) {
                if (mean[l] > 0) {
                    w = Math.max(w, max[l] / mean[l]);
                }
            }
            return w;
        }
    }

    private Eplb() {}

    /**
     * The busiest worker's load over the mean, worst layer, with each worker hosting its own experts
     * and {@code extras.get(i)} (layer -> experts) of worker i: how well the placement in force balances.
     */
    public static double imbalance(long[][] load, List<Worker> workers, List<Map<Integer, int[]>> extras) {
        double worst = 1;
        int w = workers.size();
        for (int layer = 0; layer < load.length; layer++) {
            long[] rows = load[layer];
            boolean[][] hosts = new boolean[w][rows.length];
            int[] replicas = new int[rows.length];
            host(hosts, replicas, workers, extras, layer);
            double total = Arrays.stream(rows).sum();
            if (total > 0 && w > 0) {
                worst = Math.max(worst, max(loads(rows, hosts, replicas)) / (total / w));
            }
        }
        return worst;
    }

    /** Fills who hosts what in this layer: each worker's own experts, plus its extras when given. */
    private static void host(boolean[][] hosts, int[] replicas, List<Worker> workers, List<Map<Integer, int[]>> extras,
            int layer) {
        for (int i = 0; i < workers.size(); i++) {
            host(hosts[i], replicas, workers.get(i).experts());
            if (extras != null) {
                host(hosts[i], replicas, extras.get(i).getOrDefault(layer, new int[0]));
            }
        }
    }

    private static void host(boolean[] hosts, int[] replicas, int[] experts) {
        for (int e : experts) {
            if (e >= 0 && e < hosts.length && !hosts[e]) {
                hosts[e] = true;
                replicas[e]++;
            }
        }
    }

    /** @param load rows per [layer][expert] over the window (layers without MoE: all zero) */
    public static Plan plan(long[][] load, List<Worker> workers) {
        int layers = load.length;
        Map<String, Map<Integer, int[]>> extras = new LinkedHashMap<>();
        double[] before = new double[layers];
        double[] after = new double[layers];
        double[] mean = new double[layers];
        int w = workers.size();
        for (int layer = 0; layer < layers; layer++) {
            long[] rows = load[layer];
            int experts = rows.length;
            boolean[][] hosts = new boolean[w][experts];
            int[] replicas = new int[experts];
            host(hosts, replicas, workers, null, layer);
            double total = 0;
            for (long r : rows) {
                total += r;
            }
            mean[layer] = w == 0 ? 0 : total / w;
            before[layer] = max(loads(rows, hosts, replicas));
            int[] free = new int[w];
            for (int i = 0; i < w; i++) {
                free[i] = workers.get(i).slots();
            }
            List<List<Integer>> added = new ArrayList<>();
            for (int i = 0; i < w; i++) {
                added.add(new ArrayList<>());
            }
            double[] l = loads(rows, hosts, replicas);
            while (w > 0) {
                int busiest = argmax(l);
                // The expert with the most rows per replica on the busiest worker.
                int best = -1;
                double bestShare = 0;
                for (int e = 0; e < experts; e++) {
                    if (hosts[busiest][e] && rows[e] > 0 && (double) rows[e] / replicas[e] > bestShare) {
                        best = e;
                        bestShare = (double) rows[e] / replicas[e];
                    }
                }
                int target = -1;
                for (int i = 0; best >= 0 && i < w; i++) {
                    if (free[i] > 0 && !hosts[i][best] && (target < 0 || l[i] < l[target])) {
                        target = i;
                    }
                }
                if (target < 0) {
                    break;
                }
                // One more replica: the expert's rows spread over r + 1 workers instead of r.
                double[] next = l.clone();
                double was = bestShare;
                double now = (double) rows[best] / (replicas[best] + 1);
                for (int i = 0; i < w; i++) {
                    if (hosts[i][best]) {
                        next[i] += now - was;
                    }
                }
                next[target] += now;
                // Better when the busiest load falls, or stays (ties) while the loads even out.
                if (max(next) > l[busiest] || sumOfSquares(next) >= sumOfSquares(l)) {
                    break;
                }
                hosts[target][best] = true;
                replicas[best]++;
                free[target]--;
                added.get(target).add(best);
                l = next;
            }
            after[layer] = max(loads(rows, hosts, replicas));
            for (int i = 0; i < w; i++) {
                if (!added.get(i).isEmpty()) {
                    int[] ids = added.get(i).stream().mapToInt(Integer::intValue).sorted().toArray();
                    extras.computeIfAbsent(workers.get(i).id(), k -> new LinkedHashMap<>()).put(layer, ids);
                }
            }
        }
        return new Plan(extras, before, after, mean);
    }

    private static int argmax(double[] v) {
        int best = 0;
        for (int i = 1; i < v.length; i++) {
            if (v[i] > v[best]) {
                best = i;
            }
        }
        return best;
    }

    private static double sumOfSquares(double[] v) {
        double s = 0;
        for (double x : v) {
            s += x * x;
        }
        return s;
    }

    private static double[] loads(long[] rows, boolean[][] hosts, int[] replicas) {
        double[] l = new double[hosts.length];
        for (int i = 0; i < hosts.length; i++) {
            for (int e = 0; e < rows.length; e++) {
                if (hosts[i][e]) {
                    l[i] += (double) rows[e] / replicas[e];
                }
            }
        }
        return l;
    }

    private static double max(double[] v) {
        return v.length == 0 ? 0 : Arrays.stream(v).max().getAsDouble();
    }
}
