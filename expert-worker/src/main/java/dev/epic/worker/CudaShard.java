package dev.epic.worker;

import dev.epic.kernels.WeightLayout;
import dev.epic.kernels.cuda.CudaDevice;
import dev.epic.kernels.cuda.CudaException;
import dev.epic.kernels.cuda.DeviceMatrix;
import dev.epic.kernels.cuda.DeviceMatrix.Scratch;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.config.ModelConfig;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * An {@link ExpertShard} on one GPU: the hosted experts' weights copied to device memory in their
 * checkpoint format (bf16, fp8 with block scales, or fp32), and every message computed there: its
 * rows go over in one copy, each expert with rows runs on them (gate and up in one pass for small
 * batches, cuBLAS above), and the outputs come back in one copy for the executor to combine.
 * Redundant experts (expert-parallel load balancing) are not hosted on the GPU yet.
 */
public final class CudaShard implements ExpertShard, AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(CudaShard.class);

    /**
     * The activations' precision. FP32 is the verifier's contract everywhere. BF16 rounds the rows
     * of experts with at least {@link #BF16_MIN_ROWS} rows to bf16 and multiplies them on the tensor
     * cores (fp32 accumulation), as GPU engines do; experts with fewer rows keep the fp32 kernels,
     * which are memory-bound there anyway.
     */
    public enum Activations {
        FP32, BF16;

        /** "fp32" or "bf16", as the command line writes them. */
        public static Activations parse(String s) {
            return switch (s) {
                case "fp32" -> FP32;
                case "bf16" -> BF16;
                default -> throw new IllegalArgumentException("--activations must be fp32 or bf16, got '" + s + "'");
            };
        }
    }

    public static final int BF16_MIN_ROWS = 8;

    private final CudaDevice device;
    private final int hidden;
    private final int expertCount;
    private final int[] experts;
    /** layer -> expert id -> expert (null where not hosted; the layer null when not a MoE layer). */
    private final DeviceExpert[][] own;
    private final long bytes;
    private final Scratch scratch;
    private volatile Activations activations = Activations.FP32;
    private volatile Runnable onContextLost = () -> { };

    private CudaShard(CudaDevice device, int hidden, int expertCount, int[] experts, DeviceExpert[][] own, long bytes) {
        this.device = device;
        this.hidden = hidden;
        this.expertCount = expertCount;
        this.experts = experts.clone();
        this.own = own;
        this.bytes = bytes;
        this.scratch = new Scratch(device);
    }

    /** Copies the sorted expert ids {@code experts} of every MoE layer of the checkpoint to the GPU. */
    public static CudaShard load(Checkpoint checkpoint, int[] experts, CudaDevice device) {
        ModelConfig c = checkpoint.config();
        if (c.nRoutedExperts() == null) {
            throw new IllegalArgumentException(checkpoint.directory() + " is a dense model (no n_routed_experts)");
        }
        int n = c.nRoutedExperts();
        for (int e : experts) {
            if (e < 0 || e >= n) {
                throw new IllegalArgumentException("expert " + e + " outside [0, " + n + ") of " + checkpoint.directory());
            }
        }
        DeviceExpert[][] own = new DeviceExpert[c.numHiddenLayers()][];
        long bytes = 0;
        long t0 = System.nanoTime();
        int moeLayers = 0;
        try {
            for (int layer = 0; layer < c.numHiddenLayers(); layer++) {
                if (!c.isMoeLayer(layer)) {
                    continue;
                }
                own[layer] = new DeviceExpert[n];
                for (int e : experts) {
                    own[layer][e] = upload(checkpoint, device, c, layer, e, bytes);
                    // The batched kernels read every expert of a message as the first one's format.
                    var format = own[layer][experts[0]].gate().format();
                    if (!own[layer][e].hasFormat(format)) {
                        throw new IllegalArgumentException("expert " + e + " of layer " + layer + " mixes weight formats "
                                + "or differs from expert " + experts[0] + " (" + format + "): a GPU shard needs one "
                                + "format per layer");
                    }
                    bytes += own[layer][e].storageBytes();
                }
                moeLayers++;
                log.info("layer {}: {} experts on {} ({} MiB so far)", layer, experts.length, device, bytes >> 20);
            }
        } catch (RuntimeException ex) {
            close(own);
            throw ex;
        }
        log.info("{} experts x {} MoE layers on {} in {} ms: {} MiB of weights", experts.length, moeLayers, device,
                (System.nanoTime() - t0) / 1_000_000, bytes >> 20);
        return new CudaShard(device, c.hiddenSize(), n, experts, own, bytes);
    }

    /** One expert's three matrices on the GPU; nothing stays allocated if any fails. */
    private static DeviceExpert upload(Checkpoint checkpoint, CudaDevice device, ModelConfig c, int layer, int e,
            long bytesSoFar) {
        String prefix = "model.layers." + layer + ".mlp.experts." + e;
        DeviceMatrix[] m = new DeviceMatrix[3];
        try {
            m[0] = DeviceMatrix.upload(device, checkpoint.matrix(prefix + ".gate_proj.weight", c.moeIntermediateSize(),
                    c.hiddenSize()));
            m[1] = DeviceMatrix.upload(device, checkpoint.matrix(prefix + ".up_proj.weight", c.moeIntermediateSize(),
                    c.hiddenSize()));
            m[2] = DeviceMatrix.upload(device, checkpoint.matrix(prefix + ".down_proj.weight", c.hiddenSize(),
                    c.moeIntermediateSize()));
            return new DeviceExpert(m[0], m[1], m[2], device.kernels());
        } catch (RuntimeException ex) {
            for (DeviceMatrix d : m) {
                if (d != null) {
                    d.close();
                }
            }
            if (ex instanceof CudaException) {
                throw new CudaException("copying expert " + e + " of layer " + layer + " of " + checkpoint.directory()
                        + " to " + device + " (" + (bytesSoFar >> 20) + " MiB so far): " + ex.getMessage(), ex);
            }
            throw ex;
        }
    }

    /**
     * Pseudo-random experts made on the GPU at any size (benchmarks of full-size layers without a
     * checkpoint): {@code layers} MoE layers of the given expert ids, bf16 or fp8 (128 x 128 blocks).
     */
    public static CudaShard random(CudaDevice device, WeightLayout.Format format, int hidden, int inter,
            int expertCount, int layers, int[] experts) {
        DeviceExpert[][] own = new DeviceExpert[layers][];
        long bytes = 0;
        float gateScale = (float) (1 / Math.sqrt(hidden));
        float downScale = (float) (1 / Math.sqrt(inter));
        int seed = 1;
        for (int layer = 0; layer < layers; layer++) {
            own[layer] = new DeviceExpert[expertCount];
            for (int e : experts) {
                own[layer][e] = new DeviceExpert(DeviceMatrix.random(device, format, inter, hidden, seed++, gateScale),
                        DeviceMatrix.random(device, format, inter, hidden, seed++, gateScale),
                        DeviceMatrix.random(device, format, hidden, inter, seed++, downScale), device.kernels());
                bytes += own[layer][e].storageBytes();
            }
        }
        device.synchronize();
        return new CudaShard(device, hidden, expertCount, experts, own, bytes);
    }

    public CudaDevice device() {
        return device;
    }

    /**
     * What to do when the GPU's context is lost (an illegal address, a failed launch, a hardware
     * error: every later call would fail too). The expert worker exits, so that its registration goes
     * and the coordinators route around it until it is restarted.
     */
    public CudaShard onContextLost(Runnable action) {
        this.onContextLost = action;
        return this;
    }

    private RuntimeException failed(CudaException e) {
        if (e.contextLost()) {
            log.error("the CUDA context of {} is lost: {}", device, e.getMessage());
            onContextLost.run();
        }
        return e;
    }

    /** Sets the activations' precision for the messages that follow (see {@link Activations}). */
    public CudaShard activations(Activations a) {
        if (a == Activations.BF16 && !device.kernels().hasBlas()) {
            throw new CudaException("bf16 activations run on cuBLAS, which did not load on " + device
                    + " (the CUDA 13 toolkit's libcublas.so.13 must be on LD_LIBRARY_PATH)");
        }
        this.activations = a;
        return this;
    }

    @Override
    public int hiddenSize() {
        return hidden;
    }

    @Override
    public int expertCount() {
        return expertCount;
    }

    @Override
    public int[] experts() {
        return experts.clone();
    }

    @Override
    public boolean isMoeLayer(int layer) {
        return layer >= 0 && layer < own.length && own[layer] != null;
    }

    @Override
    public boolean hosts(int layer, int expert) {
        return isMoeLayer(layer) && expert >= 0 && expert < expertCount && own[layer][expert] != null;
    }

    @Override
    public void apply(int layer, int expert, float[] x, int batch, float[] y) {
        applyAll(layer, new int[] {expert}, new int[] {0, batch}, 1, x, y);
    }

    /**
     * {@link #apply} for several experts of one layer at once, without combining: expert ids[i] takes
     * rows [starts[i], starts[i+1]) of xs and writes the same rows of ys (both [rows x hidden]).
     */
    public void applyAll(int layer, int[] ids, int[] starts, int count, float[] xs, float[] ys) {
        DeviceExpert[] mlps = experts(layer, ids, count);
        int first = starts[0];
        int pairs = starts[count] - first;
        if (pairs == 0) {
            return;
        }
        Message m = new Message(mlps, starts, count, 0);
        long rowBytes = (long) hidden * Float.BYTES;
        try (CudaDevice.Held h = device.hold()) {
            long x = scratch.buffer(0, pairs * rowBytes);
            long y = scratch.buffer(1, pairs * rowBytes);
            long block = m.reserve(scratch);
            device.upload(xs, first * hidden, pairs * hidden, x);
            device.upload(m.block, block);
            m.queue(x, y, block);
            device.download(y, ys, first * hidden, pairs * hidden);
        } catch (CudaException e) {
            throw failed(e);
        }
    }

    /**
     * The whole message on the GPU: the rows go over once (not once per expert they chose), the
     * device gathers each pair's input, runs the experts and combines each row's outputs in double
     * in the executor's order, and one row per token comes back.
     */
    @Override
    public boolean forwardCombined(int layer, float[] x, int rows, int pairs, int[] pairRow, float[] pairWeight,
            int[] ids, int[] starts, int count, double[] out) {
        DeviceExpert[] mlps = experts(layer, ids, count);
        if (pairs == 0) {
            Arrays.fill(out, 0, rows * hidden, 0.0);
            return true;
        }
        // After the expert table: pair -> row, row -> its first pair, the pairs by row (ascending: expert
        // order), the weights.
        Message m = new Message(mlps, starts, count, 3 * pairs + rows + 1);
        int rowOfAt = m.extra;
        int firstAt = rowOfAt + pairs;
        int pairOfAt = firstAt + rows + 1;
        int weightAt = pairOfAt + pairs;
        int[] firstOf = new int[rows + 1];
        for (int p = 0; p < pairs; p++) {
            m.setInt(rowOfAt + p, pairRow[p]);
            firstOf[pairRow[p] + 1]++;
            m.setInt(weightAt + p, Float.floatToRawIntBits(pairWeight[p]));
        }
        for (int r = 0; r < rows; r++) {
            firstOf[r + 1] += firstOf[r];
        }
        for (int r = 0; r <= rows; r++) {
            m.setInt(firstAt + r, firstOf[r]);
        }
        for (int p = 0; p < pairs; p++) {
            m.setInt(pairOfAt + firstOf[pairRow[p]]++, p);
        }
        long rowBytes = (long) hidden * Float.BYTES;
        var k = device.kernels();
        try (CudaDevice.Held h = device.hold()) {
            long xs = scratch.buffer(0, pairs * rowBytes);
            long ys = scratch.buffer(1, pairs * rowBytes);
            long xRows = scratch.buffer(5, rows * rowBytes);
            long sums = scratch.buffer(7, rows * 2 * rowBytes);
            long block = m.reserve(scratch);
            device.upload(x, 0, rows * hidden, xRows);
            device.upload(m.block, block);
            k.gatherRows(xRows, m.intAddress(block, rowOfAt), xs, pairs, hidden);
            m.queue(xs, ys, block);
            k.combineRows(ys, m.intAddress(block, firstAt), m.intAddress(block, pairOfAt),
                    m.intAddress(block, weightAt), sums, rows, hidden);
            device.download(sums, MemorySegment.ofArray(out).asSlice(0, (long) rows * hidden * Double.BYTES));
        } catch (CudaException e) {
            throw failed(e);
        }
        return true;
    }

    /**
     * One message's experts and the block of small arrays that goes to the device with it: six
     * addresses per expert, where each expert's rows start (from 0), then {@code extraInts} ints
     * for the caller.
     */
    private final class Message {
        final DeviceExpert[] mlps;
        final int count;
        final int[] starts;
        final int pairs;
        final MemorySegment block;
        /** Int index of the caller's ints. */
        final int extra;
        private final int startsAt;
        /** Experts with more rows than this run one by one through cuBLAS. */
        final int limit;
        int largestSmall;
        int largest;
        /** Whether experts with at least BF16_MIN_ROWS rows take the bf16 tensor-core path. */
        final boolean bf16;
        boolean anyBf16;

        Message(DeviceExpert[] mlps, int[] absStarts, int count, int extraInts) {
            this.mlps = mlps;
            this.count = count;
            this.starts = new int[count + 1];
            for (int i = 0; i <= count; i++) {
                starts[i] = absStarts[i] - absStarts[0];
            }
            this.pairs = starts[count];
            this.bf16 = activations == Activations.BF16 && device.kernels().hasBlas();
            int fp32Limit = device.kernels().hasBlas() ? DeviceMatrix.MATVEC_MAX_BATCH : Integer.MAX_VALUE;
            this.limit = bf16 ? Math.min(fp32Limit, BF16_MIN_ROWS - 1) : fp32Limit;
            this.startsAt = 12 * count; // ints after 6 longs per expert
            this.extra = startsAt + count + 1;
            this.block = MemorySegment.ofArray(new long[6 * count + (count + 1 + extraInts + 1) / 2]);
            long[] table = new long[6 * count];
            for (int i = 0; i < count; i++) {
                mlps[i].addresses(table, 6 * i);
                int n = starts[i + 1] - starts[i];
                largest = Math.max(largest, n);
                if (n <= limit) {
                    largestSmall = Math.max(largestSmall, n);
                } else if (bf16) {
                    anyBf16 = true;
                }
            }
            MemorySegment.copy(table, 0, block, ValueLayout.JAVA_LONG, 0, table.length);
            for (int i = 0; i <= count; i++) {
                setInt(startsAt + i, starts[i]);
            }
        }

        void setInt(int index, int value) {
            block.set(ValueLayout.JAVA_INT, 4L * index, value);
        }

        long intAddress(long deviceBlock, int index) {
            return deviceBlock + 4L * index;
        }

        /** Sizes the scratch before anything is queued (a buffer in use is never freed), returns the block's. */
        long reserve(Scratch s) {
            s.buffer(DeviceExpert.H, (long) pairs * mlps[0].inter() * Float.BYTES);
            if (anyBf16) {
                s.buffer(DeviceExpert.X16, (long) pairs * hidden * 2);
            }
            if (largest > limit) { // some expert runs on its own (cuBLAS)
                mlps[0].reserve(s, largest, anyBf16);
            }
            return s.buffer(6, block.byteSize());
        }

        /** Queues the experts on device rows xs -> ys: the small ones in two launches, then the large ones. */
        void queue(long xs, long ys, long deviceBlock) {
            long h = scratch.buffer(DeviceExpert.H, (long) pairs * mlps[0].inter() * Float.BYTES);
            if (largestSmall > 0) {
                DeviceMatrix.experts(mlps[0].gate(), mlps[0].down(), deviceBlock, intAddress(deviceBlock, startsAt), count,
                        xs, h, ys, limit, largestSmall);
            }
            long rowBytes = (long) hidden * Float.BYTES;
            long xh = 0;
            if (anyBf16) {
                xh = scratch.buffer(DeviceExpert.X16, (long) pairs * hidden * 2);
                device.kernels().narrowActivations(xs, xh, (long) pairs * hidden);
            }
            for (int i = 0; i < count; i++) {
                int n = starts[i + 1] - starts[i];
                if (n > limit && bf16) {
                    mlps[i].forwardBf16(xh + (long) starts[i] * hidden * 2, ys + starts[i] * rowBytes, n, scratch);
                } else if (n > limit) {
                    mlps[i].forward(xs + starts[i] * rowBytes, ys + starts[i] * rowBytes, n, scratch);
                }
            }
        }
    }

    private DeviceExpert[] experts(int layer, int[] ids, int count) {
        DeviceExpert[] mlps = new DeviceExpert[count];
        for (int i = 0; i < count; i++) {
            if (!hosts(layer, ids[i])) {
                throw new IllegalArgumentException("expert " + ids[i] + " of layer " + layer + " is not hosted here");
            }
            mlps[i] = own[layer][ids[i]];
        }
        return mlps;
    }

    /**
     * Device milliseconds of the experts' products alone (no copies) for a message whose rows
     * {@link #applyAll} has just uploaded: what a benchmark holds against memory bandwidth.
     */
    public float timeExperts(int layer, int[] ids, int[] starts, int count) {
        Message m = new Message(experts(layer, ids, count), starts, count, 0);
        long rowBytes = (long) hidden * Float.BYTES;
        try (CudaDevice.Held h = device.hold()) {
            long x = scratch.buffer(0, m.pairs * rowBytes);
            long y = scratch.buffer(1, m.pairs * rowBytes);
            long block = m.reserve(scratch);
            device.upload(m.block, block);
            return device.time(() -> m.queue(x, y, block));
        }
    }

    /** Bytes of one hosted expert of {@code layer} (weights and scales). */
    public long expertBytes(int layer, int expert) {
        return own[layer][expert].storageBytes();
    }

    @Override
    public long residentBytes() {
        return bytes;
    }

    @Override
    public void close() {
        try (CudaDevice.Held h = device.hold()) {
            scratch.close();
            close(own);
        }
    }

    private static void close(DeviceExpert[][] table) {
        for (DeviceExpert[] layer : table) {
            if (layer != null) {
                for (DeviceExpert e : layer) {
                    if (e != null) {
                        e.close();
                    }
                }
            }
        }
    }
}
