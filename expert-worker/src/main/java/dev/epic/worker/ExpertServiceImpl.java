package dev.epic.worker;

import dev.epic.model.CheckpointFingerprint;
import dev.epic.proto.ExpertRequest;
import dev.epic.proto.ExpertResponse;
import dev.epic.proto.ExpertServiceGrpc;
import dev.epic.proto.HiddenEncoding;
import dev.epic.proto.InfoRequest;
import dev.epic.proto.WorkerInfo;
import dev.epic.transport.HiddenCodec;
import dev.epic.transport.MessageStream;
import dev.epic.transport.ModelIdentity;
import dev.epic.transport.MessageStream.Refusal;
import dev.epic.transport.Protocol;
import io.grpc.Status;
import io.grpc.stub.StreamObserver;
import io.micrometer.core.instrument.MeterRegistry;
import io.micrometer.core.instrument.Timer;
import io.micrometer.core.instrument.simple.SimpleMeterRegistry;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * gRPC face of an expert worker. Each Dispatch stream gets its own {@link ShardExecutor} (messages
 * of one stream arrive one at a time); a message is decoded, run batched per expert, pre-reduced
 * and answered with one response. A message for another model or protocol version ends the stream
 * with FAILED_PRECONDITION.
 */
final class ExpertServiceImpl extends ExpertServiceGrpc.ExpertServiceImplBase {
    private final ExpertShard shard;
    private final ModelIdentity identity;
    private volatile String workerId = "(starting)";
    private final int capacity;
    private final int moeLayers;
    /** Rows one message may carry: the capacity, at least {@link #MIN_ROW_LIMIT}, within Java arrays. */
    private final int maxRows;
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile Timer handled = Timer.builder("epic.worker.message").register(new SimpleMeterRegistry());

    ExpertServiceImpl(ExpertShard shard, CheckpointFingerprint fingerprint, int capacity, int moeLayers) {
        this.shard = shard;
        this.identity = new ModelIdentity(fingerprint.name(), fingerprint.sha256(), shard.hiddenSize());
        this.capacity = capacity;
        this.moeLayers = moeLayers;
        // rows x hidden doubles (the sums, and an FP64 answer's bytes) must fit one Java array.
        this.maxRows = (int) Math.min(Math.max(capacity, MIN_ROW_LIMIT),
                (Integer.MAX_VALUE - 8) / (8L * shard.hiddenSize()));
    }

    /**
     * Rows per message accepted even with a smaller --capacity (advisory: the coordinator's steps are
     * sized by its own batch and prefill budget, not by it).
     */
    static final int MIN_ROW_LIMIT = 16_384;

    /**
     * The largest request gRPC accepts: {@link #maxRows} rows of fp32 hidden states, each routed to
     * up to {@link #MAX_PAIRS_PER_ROW} experts, and a margin, so an oversized message is refused
     * before it is read.
     */
    int maxInboundBytes() {
        long perRow = 4L * shard.hiddenSize() + 5 + 9L * MAX_PAIRS_PER_ROW; // count varint; id varint + float
        return (int) Math.min(Integer.MAX_VALUE, maxRows * perRow + (1 << 20));
    }

    /** Experts per row budgeted in {@link #maxInboundBytes}: DeepSeek-V3 routes each token to 8. */
    static final int MAX_PAIRS_PER_ROW = 32;

    /** Set once the port is bound (the default id contains it). */
    void workerId(String id) {
        this.workerId = id;
    }

    int inFlight() {
        return inFlight.get();
    }

    /** Registers this service's meters (before the worker is announced). */
    void bindMetrics(MeterRegistry registry) {
        handled = Timer.builder("epic.worker.message").tag("service", "experts")
                .description("handling one dispatch message: decode, expert math, encode").register(registry);
    }

    @Override
    public void info(InfoRequest request, StreamObserver<WorkerInfo> response) {
        WorkerInfo.Builder b = WorkerInfo.newBuilder()
                .setProtocolVersion(Protocol.VERSION)
                .setFingerprint(identity.proto())
                .setCapacity(capacity)
                .setHiddenSize(shard.hiddenSize())
                .setMoeLayers(moeLayers)
                .setWorkerId(workerId);
        for (int e : shard.experts()) {
            b.addExperts(e);
        }
        response.onNext(b.build());
        response.onCompleted();
    }

    @Override
    public StreamObserver<ExpertRequest> dispatch(StreamObserver<ExpertResponse> responses) {
        ShardExecutor executor = new ShardExecutor(shard);
        return new MessageStream<>(responses, inFlight, handled) {
            private float[] x = new float[0];
            private double[] y = new double[0];
            private int[] counts = new int[0];
            private int[] ids = new int[0];
            private float[] weights = new float[0];

            @Override
            protected String describe(ExpertRequest req) {
                return "expert worker " + workerId + ", layer " + req.getLayer() + " (" + req.getRows() + " rows)";
            }

            @Override
            protected ExpertResponse handle(ExpertRequest req) {
                long t0 = System.nanoTime();
                identity.check("expert worker", workerId, req.getProtocolVersion(), req.getFingerprint(),
                        req.getHidden());
                int hidden = req.getHidden();
                HiddenEncoding enc = req.getResponseEncoding() == HiddenEncoding.HIDDEN_ENCODING_UNSPECIFIED
                        ? req.getEncoding() : req.getResponseEncoding();
                // Everything is checked against what the message carries before any buffer grows:
                // a few bytes claiming a huge or negative (uint32) size must not allocate or compute.
                int rows = checkShape(req, enc);
                int n = rows * hidden; // checkShape bounds it by the payload actually received
                int pairs = req.getExpertIdsCount();
                if (x.length < n) {
                    x = new float[n];
                    y = new double[n];
                }
                if (counts.length < rows) {
                    counts = new int[rows];
                }
                if (ids.length < pairs) {
                    ids = new int[pairs];
                    weights = new float[pairs];
                }
                for (int r = 0; r < rows; r++) {
                    counts[r] = req.getExpertCounts(r);
                }
                for (int p = 0; p < pairs; p++) {
                    ids[p] = req.getExpertIds(p);
                    weights[p] = req.getGateWeights(p);
                }
                try {
                    HiddenCodec.decode(req.getEncoding(), req.getHiddenStates(), req.getScales(), rows, hidden, x);
                    executor.forward(req.getLayer(), x, rows, counts, ids, weights, y);
                } catch (IllegalArgumentException e) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription(e.getMessage()));
                }
                HiddenCodec.Encoded out = HiddenCodec.encodeSums(enc, y, rows, hidden);
                return ExpertResponse.newBuilder()
                        .setSequence(req.getSequence())
                        .setLayer(req.getLayer())
                        .setRows(rows)
                        .setHidden(hidden)
                        .setEncoding(enc)
                        .setOutput(out.data())
                        .setScales(out.scales())
                        .setComputeNanos(System.nanoTime() - t0)
                        .build();
            }
        };
    }

    /**
     * The message's rows, once its shape is consistent and within this worker's limit: rows (uint32)
     * and every expert_counts entry non-negative, counts summing to the pairs sent, a known request
     * and response encoding, and hidden_states/scales of exactly the size rows x hidden needs.
     * Malformed messages are INVALID_ARGUMENT; more rows than {@link #maxRows} RESOURCE_EXHAUSTED.
     */
    private int checkShape(ExpertRequest req, HiddenEncoding responseEncoding) {
        long rows = Integer.toUnsignedLong(req.getRows());
        int hidden = req.getHidden();
        if (req.getExpertCountsCount() != rows || req.getExpertIdsCount() != req.getGateWeightsCount()) {
            throw invalid("malformed request: " + req.getExpertCountsCount() + " expert_counts for " + rows
                    + " rows, " + req.getExpertIdsCount() + " expert_ids, " + req.getGateWeightsCount()
                    + " gate_weights");
        }
        if (rows > maxRows) {
            throw new Refusal(Status.RESOURCE_EXHAUSTED.withDescription("expert worker " + workerId + ": " + rows
                    + " rows in one message, at most " + maxRows + " (--capacity " + capacity + ")"));
        }
        long sum = 0;
        for (int r = 0; r < rows; r++) {
            sum += Integer.toUnsignedLong(req.getExpertCounts(r)); // a uint32 above 2^31 reads negative
        }
        if (sum != req.getExpertIdsCount()) {
            throw invalid("expert_counts sum to " + sum + " but " + req.getExpertIdsCount() + " expert_ids were sent");
        }
        if (!WIRE_ENCODINGS.contains(req.getEncoding())) {
            throw invalid("unsupported hidden-state encoding " + req.getEncoding() + " (expected FP32, BF16 or FP8_E4M3)");
        }
        if (!WIRE_ENCODINGS.contains(responseEncoding) && responseEncoding != HiddenEncoding.FP64) {
            throw invalid("unsupported response encoding " + responseEncoding
                    + " (expected FP32, BF16, FP8_E4M3 or FP64)");
        }
        // rows <= maxRows keeps rows x hidden in doubles within an int, so the codec's int sizes are safe here.
        int data = HiddenCodec.dataBytes(req.getEncoding(), (int) rows, hidden);
        int scales = HiddenCodec.scaleBytes(req.getEncoding(), (int) rows, hidden);
        if (req.getHiddenStates().size() != data || req.getScales().size() != scales) {
            throw invalid("hidden states: " + req.getHiddenStates().size() + " bytes and " + req.getScales().size()
                    + " bytes of scales, expected " + data + " and " + scales + " for " + rows + " rows x " + hidden
                    + " in " + req.getEncoding());
        }
        return (int) rows;
    }

    private static Refusal invalid(String message) {
        return new Refusal(Status.INVALID_ARGUMENT.withDescription(message));
    }

    private static final java.util.Set<HiddenEncoding> WIRE_ENCODINGS =
            java.util.EnumSet.of(HiddenEncoding.FP32, HiddenEncoding.BF16, HiddenEncoding.FP8_E4M3);
}
