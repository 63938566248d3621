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
    private final AtomicInteger inFlight = new AtomicInteger();
    private volatile Timer handled = Timer.builder("epic.worker.message").register(new SimpleMeterRegistry());

    ExpertServiceImpl(ExpertShard shard, CheckpointFingerprint fingerprint, int capacity, int moeLayers) {
        this.shard = shard;
        this.identity = new ModelIdentity(fingerprint.name(), fingerprint.sha256(), shard.hiddenSize());
        this.capacity = capacity;
        this.moeLayers = moeLayers;
    }

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
                int rows = req.getRows();
                int hidden = req.getHidden();
                if (req.getExpertCountsCount() != rows || req.getExpertIdsCount() != req.getGateWeightsCount()) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription("malformed request: "
                            + req.getExpertCountsCount() + " expert_counts for " + rows + " rows, "
                            + req.getExpertIdsCount() + " expert_ids, " + req.getGateWeightsCount() + " gate_weights"));
                }
                int n = rows * hidden;
                if (x.length < n) {
                    x = new float[n];
                    y = new double[n];
                }
                int pairs = req.getExpertIdsCount();
                if (counts.length < rows) {
                    counts = new int[rows];
                }
                if (ids.length < pairs) {
                    ids = new int[pairs];
                    weights = new float[pairs];
                }
                int sum = 0;
                for (int r = 0; r < rows; r++) {
                    counts[r] = req.getExpertCounts(r);
                    sum += counts[r];
                }
                if (sum != pairs) {
                    throw new Refusal(Status.INVALID_ARGUMENT.withDescription("expert_counts sum to " + sum
                            + " but " + pairs + " expert_ids were sent"));
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
                HiddenEncoding enc = req.getResponseEncoding() == HiddenEncoding.HIDDEN_ENCODING_UNSPECIFIED
                        ? req.getEncoding() : req.getResponseEncoding();
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

}
