package dev.epic.model.quant;

import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.VectorOps;
import dev.epic.model.ForwardObserver;
import dev.epic.model.Golden;
import dev.epic.model.KvCache;
import dev.epic.model.SequenceChunk;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.layers.Routing;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The accuracy cost of q8/q4 weights against the fp32 path (weights as stored, widened exactly) on the
 * golden prompts. Both models are fed the same tokens (prompt, then the golden greedy tokens), so each
 * of the 65 argmax positions per checkpoint compares like with like.
 *
 * <p>What is asserted: the top-1 agreement rate over all positions, and the max abs logit error over
 * the positions where every routing decision so far in that sequence (all layers, all rows of this and
 * every earlier pass, whose latents sit in the KV cache) matched the fp32 path.
 * Where routing differs the logits of these tiny random models legitimately move by O(1): a near-tied
 * expert choice flips and a different expert's random weights are used; those positions are counted,
 * not bounded. Bounds are the measured values (see the log line) with about 1.5-2x margin.
 */
public class QuantizedAccuracyTest {
    private static final Logger log = LoggerFactory.getLogger(QuantizedAccuracyTest.class);

    public record Stats(int positions, int top1Agree, int routingMatched, float maxErrRoutingMatched, float maxErrAll) {}

    /**
     * Measured on the golden prompts (65 positions each; repeatable up to last-bit JIT-tier differences):
     * <pre>
     *   checkpoint   format  top-1 agree   positions w/ matching routing   max |err| there (logit rms ~3)
     *   tiny-v3      q8      55/65 0.85    0                               -
     *   tiny-v3      q4      17/65 0.26    0                               -
     *   tiny-v3-fp8  q8      60/65 0.92    22                              0.318
     *   tiny-v3-fp8  q4      20/65 0.31    1                               1.81
     *   tiny-v3-fp8  bf16    64/65 0.98    13                              0.099
     * </pre>
     * Per matrix the relative output error is 0.5% (q8), ~8% (q4), ~0.2% (bf16); these random 3-4 layer
     * models amplify it ~30x into the logits, and tiny-v3's 256-expert routing (margins down to 5e-5)
     * flips somewhere in every sequence, so its matched-routing error cannot be measured (NaN: not
     * asserted; its top-1 rate still is). Bounds: measured values with ~1.5x margin (top-1 floor ~0.1
     * below the measurement; q4 top-1 is far above chance, 1/2048, but low on these models).
     */
    @ParameterizedTest
    @CsvSource({
        // model, format, min top-1 agreement, max logit error where routing matched (NaN: none matched)
        "tiny-v3,     q8,   0.75, NaN",
        "tiny-v3,     q4,   0.20, NaN",
        "tiny-v3-fp8, q8,   0.80, 0.5",
        "tiny-v3-fp8, q4,   0.20, 3.0",
        "tiny-v3-fp8, bf16, 0.90, 0.15",
    })
    void quantisedLogitsStayCloseToFp32(String name, String format, double minTop1, float maxErr) {
        try (Checkpoint ck = Checkpoint.open(TestData.model(name))) {
            Transformer fp32 = Transformer.load(ck, WeightFormat.AUTO);
            Transformer quant = Transformer.load(ck, WeightFormat.parse(format));
            Stats s = measure(fp32, quant, Golden.of(name).prompts());
            double top1 = (double) s.top1Agree() / s.positions();
            log.info("{} {}: top-1 agreement {}/{} = {}, routing matched at {} positions, max |logit err| there {}, "
                    + "overall {}", name, format, s.top1Agree(), s.positions(), top1, s.routingMatched(),
                    s.maxErrRoutingMatched(), s.maxErrAll());
            assertTrue(top1 >= minTop1, name + " " + format + " top-1 agreement " + top1 + " < " + minTop1);
            if (!Float.isNaN(maxErr)) {
                assertTrue(s.routingMatched() > 0, "no position with identical routing");
                assertTrue(s.maxErrRoutingMatched() <= maxErr, name + " " + format + " max logit error "
                        + s.maxErrRoutingMatched() + " > " + maxErr + " where routing matched");
            }
        }
    }

    public static Stats measure(Transformer ref, Transformer quant, List<Golden.Prompt> prompts) {
        int positions = 0, agree = 0, matched = 0;
        float errMatched = 0f, errAll = 0f;
        for (Golden.Prompt p : prompts) {
            KvCache cr = ref.newCache();
            KvCache cq = quant.newCache();
            boolean same = true; // every routing decision of this sequence so far, cached positions included
            int[] feed = p.tokens();
            for (int k = 0; k <= p.greedyTokens().length; k++) {
                RoutingLog lr = new RoutingLog();
                RoutingLog lq = new RoutingLog();
                float[] a = ref.step(List.of(SequenceChunk.next(cr, feed)), lr).getFirst();
                float[] b = quant.step(List.of(SequenceChunk.next(cq, feed)), lq).getFirst();
                positions++;
                if (VectorOps.argmax(a) == VectorOps.argmax(b)) {
                    agree++;
                }
                float err = Golden.maxAbsDiff(a, b);

                errAll = Math.max(errAll, err);
                same &= lr.sameAs(lq);
                if (same) {
                    matched++;
                    errMatched = Math.max(errMatched, err);
                }
                if (k < p.greedyTokens().length) {
                    feed = new int[] {p.greedyTokens()[k]};
                }
            }
        }
        return new Stats(positions, agree, matched, errMatched, errAll);
    }

    /** The experts chosen in every MoE layer of one pass. */
    static final class RoutingLog implements ForwardObserver {
        final List<int[]> experts = new ArrayList<>();

        @Override
        public void routing(int layer, Routing routing) {
            experts.add(routing.experts().clone());
        }

        boolean sameAs(RoutingLog o) {
            if (experts.size() != o.experts.size()) {
                return false;
            }
            for (int i = 0; i < experts.size(); i++) {
                int[] a = experts.get(i).clone();
                int[] b = o.experts.get(i).clone();
                Arrays.sort(a);
                Arrays.sort(b);
                if (!Arrays.equals(a, b)) {
                    return false;
                }
            }
            return true;
        }
    }
}
