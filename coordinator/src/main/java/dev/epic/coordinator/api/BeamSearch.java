package dev.epic.coordinator.api;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;

/**
 * Beam search as vLLM's {@code use_beam_search} runs it: {@code width} beams; each step every beam is
 * extended by its 2 x width most likely next tokens (the model's log-probabilities, whatever the
 * temperature), a beam that draws EOS is complete, and the width best of the rest go on; after
 * {@code maxTokens} steps the complete and the running beams together give the width best. A beam's
 * score is its summed log-probability over (prompt + tokens) ^ lengthPenalty.
 */
final class BeamSearch {
    /**
     * A beam: its generated tokens (without the end-of-sequence token that completed it, {@code end}; -1
     * while it runs), and their summed log-probability (the end's included).
     */
    record Beam(int[] tokens, double logprob, int end) {
        boolean completed() {
            return end >= 0;
        }

        double score(int promptLength, double lengthPenalty) {
            return logprob / Math.pow(promptLength + tokens.length, lengthPenalty);
        }
    }

    /** The model: the logits of the position after each sequence (prompt + a beam's tokens). */
    interface Model {
        List<float[]> next(List<int[]> sequences) throws Exception;
    }

    private BeamSearch() {
    }

    /**
     * The {@code width} best beams after {@code prompt}, best first.
     *
     * @param eos        whether a token completes a beam (end of sequence; none with ignore_eos)
     * @param vocabulary the ids an answer may hold are below it (the tokenizer's; the logits' rows past it are
     *                   padding), as sampling takes them
     */
    static List<Beam> search(int[] prompt, int width, int maxTokens, double lengthPenalty,
            java.util.function.IntPredicate eos, int vocabulary, Model model) throws Exception {
        Comparator<Beam> best = Comparator.comparingDouble((Beam b) -> b.score(prompt.length, lengthPenalty)).reversed();
        List<Beam> running = List.of(new Beam(new int[0], 0, -1));
        List<Beam> completed = new ArrayList<>();
        for (int step = 0; step < maxTokens && !running.isEmpty(); step++) {
            List<int[]> sequences = new ArrayList<>(running.size());
            for (Beam b : running) {
                int[] s = Arrays.copyOf(prompt, prompt.length + b.tokens().length);
                System.arraycopy(b.tokens(), 0, s, prompt.length, b.tokens().length);
                sequences.add(s);
            }
            List<float[]> logits = model.next(sequences);
            List<Beam> extended = new ArrayList<>();
            for (int i = 0; i < running.size(); i++) {
                Beam b = running.get(i);
                float[] row = logits.get(i);
                double[] logprobs = logSoftmax(row.length > vocabulary ? Arrays.copyOf(row, vocabulary) : row);
                for (int token : top(logprobs, 2 * width)) {
                    double lp = b.logprob() + logprobs[token];
                    if (eos.test(token)) {
                        completed.add(new Beam(b.tokens(), lp, token));
                    } else {
                        int[] t = Arrays.copyOf(b.tokens(), b.tokens().length + 1);
                        t[t.length - 1] = token;
                        extended.add(new Beam(t, lp, -1));
                    }
                }
            }
            extended.sort(best); // stable: equal scores keep their beam and rank order
            running = extended.subList(0, Math.min(width, extended.size()));
        }
        List<Beam> all = new ArrayList<>(completed);
        all.addAll(running);
        all.sort(best);
        return List.copyOf(all.subList(0, Math.min(width, all.size())));
    }

    /** log softmax in double. */
    static double[] logSoftmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float l : logits) {
            max = Math.max(max, l);
        }
        double sum = 0;
        for (float l : logits) {
            sum += Math.exp(l - max);
        }
        double logZ = max + Math.log(sum);
        double[] out = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = logits[i] - logZ;
        }
        return out;
    }

    /** The {@code k} tokens of highest log-probability, best first (the lower id first among equals). */
    static int[] top(double[] logprobs, int k) {
        k = Math.min(k, logprobs.length);
        int[] best = new int[k];
        int n = 0;
        for (int t = 0; t < logprobs.length; t++) {
            if (n == k && logprobs[t] <= logprobs[best[k - 1]]) {
                continue;
            }
            int at = n < k ? n++ : k - 1;
            while (at > 0 && logprobs[best[at - 1]] < logprobs[t]) {
                best[at] = best[at - 1];
                at--;
            }
            best[at] = t;
        }
        return best;
    }
}
