package dev.epic.cli;

import dev.epic.kernels.VectorOps;
import dev.epic.model.KvCache;
import dev.epic.model.KvCacheDtype;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.config.ConfigException;
import dev.epic.model.config.ModelConfig;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Greedy logits probe: prints N+1 JSON lines {@code {"step": k, "token": argmax, "logits": [...]}};
 * line 0 holds the logits of the last prompt position, line k the logits after feeding line k-1's
 * argmax token through the KV cache. Floats use Float.toString, which parses back exactly.
 */
@Command(name = "logits", mixinStandardHelpOptions = true,
        description = "Print the logits of a prompt and of N greedy decode steps as JSON lines.")
public final class LogitsCommand implements Callable<Integer> {
    static final int BAD_INPUT = 2;

    @Spec
    CommandSpec spec;

    @Option(names = "--model", paramLabel = "DIR", description = "checkpoint directory (runs the model in this process)")
    Path model;

    @Option(names = "--target", paramLabel = "HOST:PORT",
            description = "instead of --model: a running coordinator (its GenerationService.Logits)")
    String target;

    @Option(names = "--ids", required = true, paramLabel = "IDS", description = "prompt token ids, e.g. 5,17,4")
    String ids;

    @Option(names = "--steps", defaultValue = "0", paramLabel = "N", description = "greedy decode steps (default 0)")
    int steps;

    @Option(names = "--timeout-s", defaultValue = "600", paramLabel = "S",
            description = "with --target: request deadline (default ${DEFAULT-VALUE})")
    long timeoutS;

    @Mixin
    KvCacheFlags kvCache; // with --model: what a --target coordinator was started with

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        int[] tokens;
        ModelConfig config;
        KvCacheDtype kvCacheDtype;
        try {
            tokens = parseIds(ids);
            kvCacheDtype = kvCache.dtype();
            if (steps < 0) {
                throw new IllegalArgumentException("--steps must be >= 0, got " + steps);
            }
            if ((model == null) == (target == null)) {
                throw new IllegalArgumentException("give exactly one of --model DIR or --target HOST:PORT");
            }
            Flags.requirePositive("--timeout-s", timeoutS);
            if (target != null) {
                return RemoteLogits.print(target, tokens, steps, timeoutS, spec.commandLine().getOut(), err);
            }
            if (!Files.isDirectory(model)) {
                throw new IllegalArgumentException("model directory not found: " + model);
            }
            config = ModelConfig.load(model);
            for (int t : tokens) {
                if (t < 0 || t >= config.vocabSize()) {
                    throw new IllegalArgumentException("token id " + t + " outside [0, " + config.vocabSize()
                            + ") of " + model);
                }
            }
        } catch (IllegalArgumentException | ConfigException e) {
            return fail(err, e.getMessage());
        }
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            Transformer transformer = Transformer.load(checkpoint).kvCacheDtype(kvCacheDtype);
            PrintWriter out = spec.commandLine().getOut();
            KvCache cache = transformer.newCache();
            float[] logits = transformer.forward(cache, tokens);
            for (int k = 0; ; k++) {
                int token = VectorOps.argmax(logits);
                out.println(line(k, token, logits));
                out.flush();
                if (k == steps) {
                    break;
                }
                logits = transformer.forward(cache, token);
            }
            return 0;
        } catch (IllegalArgumentException | CheckpointException | ConfigException e) {
            return fail(err, e.getMessage());
        }
    }

    private static int fail(PrintWriter err, String message) {
        err.println("epic logits: " + message);
        err.flush();
        return BAD_INPUT;
    }

    static int[] parseIds(String s) {
        String[] parts = s.split(",", -1);
        int[] out = new int[parts.length];
        for (int i = 0; i < parts.length; i++) {
            String p = parts[i].trim();
            try {
                out[i] = Integer.parseInt(p);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--ids must be comma-separated integers, got '" + s + "' (bad item '"
                        + p + "')");
            }
        }
        return out;
    }

    static String line(int step, int token, float[] logits) {
        StringBuilder sb = new StringBuilder(logits.length * 12 + 48);
        sb.append("{\"step\": ").append(step).append(", \"token\": ").append(token).append(", \"logits\": [");
        for (int i = 0; i < logits.length; i++) {
            if (i > 0) {
                sb.append(", ");
            }
            sb.append(Float.toString(logits[i]));
        }
        return sb.append("]}").toString();
    }
}
