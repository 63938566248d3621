package dev.epic.transport;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import java.util.TreeMap;

/**
 * The JSON of {@link ZkLayout#placementPath}: {@code {"version": 3, "workers": {"w-1": {"5": [17, 200]}}}},
 * per worker id the extra experts of each layer it should host in its redundant slots.
 */
public final class Placements {
    private static final ObjectMapper JSON = new ObjectMapper();

    /** version: increases with every plan; extras: worker id -> layer -> sorted expert ids. */
    public record Placement(long version, Map<String, Map<Integer, int[]>> extras) {
        /** This worker's extras (empty when it has none). */
        public Map<Integer, int[]> of(String workerId) {
            return extras.getOrDefault(workerId, Map.of());
        }
    }

    private Placements() {}

    public static byte[] toJson(Placement p) {
        ObjectNode o = JSON.createObjectNode();
        o.put("version", p.version());
        ObjectNode workers = o.putObject("workers");
        for (var w : p.extras().entrySet()) {
            ObjectNode layers = workers.putObject(w.getKey());
            for (var l : new TreeMap<>(w.getValue()).entrySet()) {
                var ids = layers.putArray(Integer.toString(l.getKey()));
                for (int e : l.getValue()) {
                    ids.add(e);
                }
            }
        }
        return o.toString().getBytes(StandardCharsets.UTF_8);
    }

    public static Placement fromJson(byte[] data) {
        JsonNode o;
        try {
            o = JSON.readTree(data);
        } catch (IOException e) {
            throw new IllegalArgumentException("expert placement is not JSON: " + e.getMessage(), e);
        }
        if (o == null || !o.isObject() || !o.path("workers").isObject()) {
            throw new IllegalArgumentException("expert placement lacks its 'workers' object");
        }
        Map<String, Map<Integer, int[]>> extras = new TreeMap<>();
        for (var w : o.path("workers").properties()) {
            Map<Integer, int[]> layers = new TreeMap<>();
            for (var l : w.getValue().properties()) {
                int[] ids = new int[l.getValue().size()];
                for (int i = 0; i < ids.length; i++) {
                    ids[i] = l.getValue().get(i).asInt();
                }
                layers.put(Integer.parseInt(l.getKey()), ids);
            }
            extras.put(w.getKey(), layers);
        }
        return new Placement(o.path("version").asLong(0), extras);
    }
}
