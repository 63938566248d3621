package dev.epic.transport;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.proto.LayerExperts;
import dev.epic.proto.ModelFingerprint;
import dev.epic.proto.WorkerAnnouncement;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/** JSON form of a {@link WorkerAnnouncement}, the data of a worker's ephemeral znode. */
public final class Announcements {
    private static final ObjectMapper JSON = new ObjectMapper();

    private Announcements() {}

    public static byte[] toJson(WorkerAnnouncement a) {
        ObjectNode o = JSON.createObjectNode();
        o.put("workerId", a.getWorkerId());
        o.put("address", a.getAddress());
        ArrayNode experts = o.putArray("experts");
        for (int e : a.getExpertsList()) {
            experts.add(e);
        }
        ObjectNode fp = o.putObject("fingerprint");
        fp.put("name", a.getFingerprint().getName());
        fp.put("sha256", a.getFingerprint().getSha256());
        o.put("capacity", a.getCapacity());
        o.put("pid", a.getPid());
        o.put("protocolVersion", a.getProtocolVersion());
        if (a.getKvCacheBytes() > 0) {
            o.put("kvCacheBytes", a.getKvCacheBytes());
        }
        if (a.getPrefixCacheBytes() > 0) {
            o.put("prefixCacheBytes", a.getPrefixCacheBytes());
        }
        if (!a.getWeights().isEmpty()) {
            o.put("weights", a.getWeights());
        }
        if (a.getMtpLayer()) {
            o.put("mtpLayer", true);
        }
        if (!a.getKvCacheDtype().isEmpty()) {
            o.put("kvCacheDtype", a.getKvCacheDtype());
        }
        if (a.getLeaving()) {
            o.put("leaving", true);
        }
        if (a.getRedundantSlots() > 0) {
            o.put("redundantSlots", a.getRedundantSlots());
            ObjectNode redundant = o.putObject("redundant");
            for (LayerExperts l : a.getRedundantList()) {
                ArrayNode ids = redundant.putArray(Integer.toString(l.getLayer()));
                l.getExpertsList().forEach(ids::add);
            }
        }
        return o.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** Parses znode data; a malformed node gets an exception naming what is missing. */
    public static WorkerAnnouncement fromJson(byte[] data) {
        JsonNode o;
        try {
            o = JSON.readTree(data);
        } catch (IOException e) {
            throw new IllegalArgumentException("worker announcement is not JSON: " + e.getMessage(), e);
        }
        if (o == null || !o.isObject()) {
            throw new IllegalArgumentException("worker announcement is not a JSON object");
        }
        WorkerAnnouncement.Builder b = WorkerAnnouncement.newBuilder()
                .setWorkerId(text(o, "workerId"))
                .setAddress(text(o, "address"))
                .setCapacity(o.path("capacity").asInt(0))
                .setPid(o.path("pid").asLong(0))
                .setProtocolVersion(o.path("protocolVersion").asInt(0))
                .setKvCacheBytes(o.path("kvCacheBytes").asLong(0))
                .setPrefixCacheBytes(o.path("prefixCacheBytes").asLong(0))
                .setWeights(o.path("weights").asText(""))
                .setKvCacheDtype(o.path("kvCacheDtype").asText(""))
                .setMtpLayer(o.path("mtpLayer").asBoolean(false))
                .setLeaving(o.path("leaving").asBoolean(false));
        JsonNode fp = o.path("fingerprint");
        b.setFingerprint(ModelFingerprint.newBuilder()
                .setName(fp.path("name").asText(""))
                .setSha256(text(fp, "sha256")));
        JsonNode experts = o.path("experts");
        if (!experts.isArray()) {
            throw new IllegalArgumentException("worker announcement lacks the 'experts' array");
        }
        for (JsonNode e : experts) {
            b.addExperts(e.asInt());
        }
        b.setRedundantSlots(o.path("redundantSlots").asInt(0));
        for (var layer : o.path("redundant").properties()) {
            LayerExperts.Builder l = LayerExperts.newBuilder().setLayer(Integer.parseInt(layer.getKey()));
            for (JsonNode e : layer.getValue()) {
                l.addExperts(e.asInt());
            }
            b.addRedundant(l);
        }
        return b.build();
    }

    private static String text(JsonNode o, String field) {
        JsonNode v = o.get(field);
        if (v == null || !v.isTextual() || v.asText().isEmpty()) {
            throw new IllegalArgumentException("worker announcement lacks the string field '" + field + "'");
        }
        return v.asText();
    }

    /** How an attention worker's caches store positions: as announced, fp32 when it announces none. */
    public static String kvCacheDtype(WorkerAnnouncement a) {
        return a.getKvCacheDtype().isEmpty() ? "fp32" : a.getKvCacheDtype();
    }

    /**
     * Why a coordinator serving model {@code sha256} ({@code name}) must not use this worker, or null when
     * it may: another model or protocol version; weights in another format than {@code weights} (null:
     * any), since a row must not depend on which replica computed it; an attention worker whose KV caches
     * store positions in another dtype than {@code kvCacheDtype} (null: any; an unannounced one is fp32),
     * since a sequence's logits must not depend on which worker holds it; and, when {@code mtpLayer}, an
     * attention worker that does not run the MTP layer's attention (a coordinator drafting with it).
     */
    public static String refusal(WorkerAnnouncement a, String sha256, String name, String weights, String kvCacheDtype,
            boolean mtpLayer) {
        // The version first: another epic may compute the fingerprint differently.
        if (a.getProtocolVersion() != Protocol.VERSION) {
            return "protocol version " + a.getProtocolVersion() + " (this coordinator speaks " + Protocol.VERSION
                    + "): run the same epic version on workers and coordinators";
        }
        if (!a.getFingerprint().getSha256().equals(sha256)) {
            return "model fingerprint mismatch: worker holds " + a.getFingerprint().getName() + " "
                    + ModelIdentity.abbrev(a.getFingerprint().getSha256()) + ", this coordinator serves " + name + " "
                    + ModelIdentity.abbrev(sha256);
        }
        if (weights != null && !a.getWeights().isEmpty() && !a.getWeights().equals(weights)) {
            return "its weights are " + a.getWeights() + " but this coordinator's are " + weights + " (--weights): "
                    + "replicas must compute the same rows, so give every worker the coordinator's --weights";
        }
        String kv = kvCacheDtype(a);
        if (kvCacheDtype != null && !kv.equals(kvCacheDtype)) {
            return "its KV caches store " + kv + " but this coordinator's store " + kvCacheDtype + " (--kv-cache-dtype): "
                    + "a sequence's logits must not depend on its worker, so give every attention worker the "
                    + "coordinator's --kv-cache-dtype";
        }
        if (mtpLayer && !a.getMtpLayer()) {
            return "it does not run the MTP layer's attention, which this coordinator drafts with (--speculative-method "
                    + "mtp): its checkpoint has no MTP layer, or it runs an older epic";
        }
        return null;
    }
}
