package dev.epic.kernels;

import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;

/**
 * Prints the bits of every {@link InvarianceCases} product at batches 1 and 3, after the given number
 * of warm-up rounds (0: the very first calls, i.e. interpreted code). Run as a separate JVM by
 * {@link BatchInvarianceTest} under -Xint, C1 only, or default tiers; one line per case and batch.
 */
final class TierProbe {
    static final int[] BATCHES = {1, 3};

    private TierProbe() {}

    public static void main(String[] args) {
        int rounds = Integer.parseInt(args[0]);
        try (Arena arena = Arena.ofShared()) {
            for (String line : lines(InvarianceCases.build(arena), rounds)) {
                System.out.println(line);
            }
        }
    }

    /** Warms up (rounds x every case at every batch), then one line per case and batch. */
    static List<String> lines(List<InvarianceCases.Case> cases, int rounds) {
        for (int i = 0; i < rounds; i++) {
            for (InvarianceCases.Case c : cases) {
                for (int b : BATCHES) {
                    c.m().matmul(InvarianceCases.input(c, b), new float[b * c.m().rows()], b);
                }
            }
            activations();
        }
        List<String> lines = new ArrayList<>();
        for (InvarianceCases.Case c : cases) {
            for (int b : BATCHES) {
                float[] out = new float[b * c.m().rows()];
                c.m().matmul(InvarianceCases.input(c, b), out, b);
                StringBuilder sb = new StringBuilder(c.name()).append(" batch ").append(b).append(':');
                for (float v : out) {
                    sb.append(' ').append(Integer.toHexString(Float.floatToIntBits(v)));
                }
                lines.add(sb.toString());
            }
        }
        StringBuilder sb = new StringBuilder("softmax, swiglu batch 1:");
        for (float v : activations()) {
            sb.append(' ').append(Integer.toHexString(Float.floatToIntBits(v)));
        }
        lines.add(sb.toString());
        return lines;
    }

    /** softmax and SwiGLU (both through {@link Exp}) of a fixed input with a vector body and a scalar tail. */
    private static float[] activations() {
        int n = 4 * Simd.L + 7;
        float[] x = new float[n];
        float[] up = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) Math.sin(i * 0.7) * (i % 5 == 0 ? 90f : 6f);
            up[i] = (float) Math.cos(i * 1.3);
        }
        float[] out = new float[2 * n];
        VectorOps.swiglu(x, 0, up, 0, out, 0, n);
        VectorOps.softmax(x, 0, n);
        System.arraycopy(x, 0, out, n, n);
        return out;
    }
}
