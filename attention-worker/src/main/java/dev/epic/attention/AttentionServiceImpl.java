package dev.epic.attention;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.model.KvCache;
import dev.epic.model.attention.AttentionLayers;
import dev.epic.model.layers.SequenceRows;
import dev.epic.proto.AttendRequest;
import dev.epic.proto.AttendResponse;
import dev.epic.proto.AttentionServiceGrpc;
import dev.epic.proto.AttentionWorkerInfo;
import dev.epic.proto.HiddenEncoding;
import dev.epic.proto.InfoRequest;
import dev.epic.proto.PrefixKeep;
import dev.epic.proto.ReleaseRequest;
import dev.epic.proto.ReleaseResponse;
import dev.epic.proto.SequenceSegment;
import dev.epic.transport.HiddenCodec;
import dev.epic.transport.MessageStream;
import dev.epic.transport.ModelIdentity;
import dev.epic.transport.MessageStream.Refusal;
import dev.epic.transport.Protocol;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.Gauge;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicInteger;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * gRPC face of an attention worker. An Attend message carries one layer's attention input for the
 * rows of some of this worker's sequences; they run through that layer's MLA in one batch, exactly
 * as in the single-process engine, and the output goes back in one response. A message for another
 * model, protocol version or an unknown cache ends the stream with its status (and the stream's
 * caches go with it); new sequences beyond the worker's room are refused in the answer instead.
 */
final class AttentionServiceImpl extends AttentionServiceGrpc.AttentionServiceImplBase {
    private static final Logger log = LoggerFactory.getLogger(AttentionServiceImpl.class);

    private final AttentionLayers layers;
    private final SequenceCaches caches;
    private final ModelIdentity identity;
    private final int hidden;
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile Timer handled = Timer.builder("epic.worker.message").register(new SimpleMeterRegistry());
    private volatile String workerId = "(starting)";

    AttentionServiceImpl(AttentionLayers layers, SequenceCaches caches, CheckpointFingerprint fingerprint) {
        this.layers = layers;
        this.caches = caches;
        this.hidden = layers.config().hiddenSize();
        this.identity = new ModelIdentity(fingerprint.name(), fingerprint.sha256(), hidden);
    }

    /**
     * The largest Attend message gRPC reads: {@link #MAX_ROWS} rows of fp32 hidden states with a
     * segment each, and a margin, so an oversized message is refused before it is read.
     */
    int maxInboundBytes() {
        return (int) Math.min(Integer.MAX_VALUE, MAX_ROWS * (4L * hidden + 32) + (1 << 20));
    }

    /** Rows one message may carry: far above a coordinator's step (its batch and prefill budget). */
    static final int MAX_ROWS = 16_384;

    void workerId(String id) {
        this.workerId = id;
    }

    int inFlight() {
        return inFlight.get();
    }

    /** Registers this service's meters (before the worker is announced). */
    void bindMetrics(MeterRegistry registry) {
        handled = Timer.builder("epic.worker.message").tag("service", "attention")
                .description("handling one attend message: one layer's MLA for its rows").register(registry);
        Gauge.builder("epic.attention.cached.sequences", caches, SequenceCaches::size)
                .description("sequences whose KV caches are held here").register(registry);
        Gauge.builder("epic.attention.cached.positions", caches, SequenceCaches::positions)
                .description("token positions held in KV caches here").register(registry);
        Gauge.builder("epic.attention.max.sequences", caches, SequenceCaches::maxSequences)
                .description("the most sequences held at once").register(registry);
        Gauge.builder("epic.attention.kv.cache.bytes", caches, SequenceCaches::heldBytes)
                .description("bytes of KV cache pages held here beside those kept prefix blocks hold (the KV budget's count)").register(registry);
        Gauge.builder("epic.attention.kv.cache.budget.bytes", caches, SequenceCaches::kvCacheBytes)
                .description("the most bytes of KV cache held at once (--kv-cache-mb)").register(registry);
        Gauge.builder("epic.attention.prefix.cache.bytes", caches, SequenceCaches::prefixBytes)
                .description("bytes of prompt prefix blocks kept here for coordinators (all streams)").register(registry);
        io.micrometer.core.instrument.FunctionCounter.builder("epic.attention.refused.sequences", caches,
                        SequenceCaches::refusedSequences)
                .description("sequences refused for lack of room (sequences or KV budget), once per refusal: "
                        + "coordinators that account for the budget rarely meet one").register(registry);
    }

    @Override
    public void info(InfoRequest request, StreamObserver<AttentionWorkerInfo> response) {
        response.onNext(AttentionWorkerInfo.newBuilder()
                .setProtocolVersion(Protocol.VERSION)
                .setFingerprint(identity.proto())
                .setWorkerId(workerId)
                .setLayers(layers.count())
                .setHiddenSize(hidden)
                .setMaxSequences(caches.maxSequences())
                .setCachedSequences(caches.size())
                .setCachedPositions(caches.positions())
                .setMtpLayer(layers.hasMtpLayer())
                .build());
        response.onCompleted();
    }

    @Override
    public void release(ReleaseRequest request, StreamObserver<ReleaseResponse> response) {
        for (long id : request.getCacheIdsList()) {
            caches.release(id);
        }
        response.onNext(ReleaseResponse.newBuilder().setCachedSequences(caches.size()).build());
        response.onCompleted();
    }

    @Override
    public StreamObserver<AttendRequest> attend(StreamObserver<AttendResponse> responses) {
        return new MessageStream<>(responses, inFlight, handled) {
            private float[] x = new float[0];
            private float[] y = new float[0];

            @Override
            protected String describe(AttendRequest req) {
                return "attention worker " + workerId + ", layer " + req.getLayer();
            }

            @Override
            protected void onEnd() {
                int dropped = caches.releaseAll(this);
                if (dropped > 0) {
                    log.info("attend stream ended: dropped its {} sequence cache(s)", dropped);
                }
            }

            @Override
            protected AttendResponse handle(AttendRequest req) {
                long t0 = System.nanoTime();
                check(req);
                caches.drop(this, req.getDroppedPrefixBlocksList()); // evicted first: the keeps fit the budget then
                try { // a finished sequence's prompt and answer are kept before its cache is freed
                    for (PrefixKeep k : req.getPrefixKeepsList()) {
                        if (k.getStart() < 0 || k.getBlockPositions() <= 0) { // uint32: above 2^31 reads negative
                            throw new IllegalArgumentException("prefix blocks of sequence cache " + k.getCacheId()
                                    + " from " + Integer.toUnsignedString(k.getStart()) + " in blocks of "
                                    + Integer.toUnsignedString(k.getBlockPositions()) + " positions");
                        }
                        caches.keep(this, k.getCacheId(), k.getStart(), k.getBlockPositions(), k.getBlockIdsList());
                    }
                } catch (IllegalArgumentException e) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription("attention worker " + workerId + ": "
                            + e.getMessage()));
                }
                for (long id : req.getReleasedCacheIdsList()) {
                    caches.release(id);
                }
                int layer = req.getLayer();
                List<SequenceCaches.Segment> segments = new ArrayList<>(req.getSegmentsCount());
                Set<Long> seen = new HashSet<>();
                long total = 0;
                for (SequenceSegment s : req.getSegmentsList()) {
                    if (s.getLength() == 0 || !seen.add(s.getCacheId())) {
                        throw new Refusal(Status.INVALID_ARGUMENT.withDescription("segment of cache "
                                + s.getCacheId() + " is empty or repeated"));
                    }
                    // uint32 fields: above 2^31 they read negative here and would index out of bounds.
                    if (s.getStart() < 0 || s.getLength() < 0 || s.getReserve() < 0 || s.getCacheLayers() < 0) {
                        throw new Refusal(Status.INVALID_ARGUMENT.withDescription("segment of cache "
                                + s.getCacheId() + " starts at " + Integer.toUnsignedString(s.getStart()) + " with "
                                + Integer.toUnsignedString(s.getLength()) + " positions (reserving "
                                + Integer.toUnsignedString(s.getReserve()) + "): beyond any context"));
                    }
                    segments.add(new SequenceCaches.Segment(s.getCacheId(), s.getStart(), s.getLength(),
                            s.getReserve(), s.getPrefixBlocksList(), s.getCacheLayers()));
                    total += s.getLength();
                }
                if (req.getHiddenStates().size() != 4L * total * hidden) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription("hidden_states holds "
                            + req.getHiddenStates().size() + " bytes; " + total + " rows x " + hidden + " floats need "
                            + 4L * total * hidden));
                }
                List<KvCache> held;
                try {
                    held = caches.acquire(this, layer, segments);
                } catch (IllegalArgumentException e) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription("attention worker " + workerId + ": "
                            + e.getMessage()));
                } catch (SequenceCaches.Refused r) {
                    String why = "attention worker " + workerId + ": " + r.getMessage();
                    if (r.exhausted) { // only the new sequences are refused; the stream goes on
                        return AttendResponse.newBuilder().setSequence(req.getSequence()).setLayer(layer)
                                .addAllRefusedCacheIds(r.ids).setRefusal(why).build();
                    }
                    throw new Refusal(Status.FAILED_PRECONDITION.withDescription(why));
                }
                List<SequenceRows> sequences = new ArrayList<>(held.size());
                int rows = 0;
                for (int i = 0; i < held.size(); i++) {
                    SequenceSegment s = req.getSegments(i);
                    sequences.add(new SequenceRows(held.get(i), s.getStart(), rows, s.getLength()));
                    rows += s.getLength();
                }
                int n = rows * hidden;
                if (x.length < n) {
                    x = new float[n];
                    y = new float[n];
                }
                HiddenCodec.decode(HiddenEncoding.FP32, req.getHiddenStates(), com.google.protobuf.ByteString.EMPTY,
                        rows, hidden, x);
                try {
                    if (rows > 0) { // a message without rows only keeps, drops and releases
                        layers.layer(layer).forward(x, rows, sequences, y);
                    }
                } catch (IllegalArgumentException e) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription(e.getMessage()));
                }
                if (layer == layers.count() - 1) {
                    for (SequenceRows s : sequences) {
                        s.cache().setLength(s.start() + s.length());
                    }
                } else if (layer == layers.count()) { // the MTP layer's positions, written as the coordinator drafts
                    for (int i = 0; i < sequences.size(); i++) {
                        SequenceRows s = sequences.get(i);
                        caches.wroteMtpLayer(req.getSegments(i).getCacheId(), s.start() + s.length());
                    }
                }
                return AttendResponse.newBuilder()
                        .setSequence(req.getSequence())
                        .setLayer(layer)
                        .setRows(rows)
                        .setOutput(HiddenCodec.encode(HiddenEncoding.FP32, y, rows, hidden).data())
                        .setComputeNanos(System.nanoTime() - t0)
                        .build();
            }

            private void check(AttendRequest req) {
                identity.check("attention worker", workerId, req.getProtocolVersion(), req.getFingerprint(),
                        req.getHidden());
                int top = layers.servedLayers(); // the MTP layer is one past the decoder's
                if (req.getLayer() < 0 || req.getLayer() >= top) { // uint32: negative is huge
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription("layer "
                            + Integer.toUnsignedString(req.getLayer())
                            + " outside [0, " + top + ")" + (layers.hasMtpLayer() ? ""
                                    : " (this worker's checkpoint has no MTP layer)")));
                }
            }
        };
    }
}
