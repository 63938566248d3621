package dev.epic.cli;

import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.config.ConfigException;
import dev.epic.model.moe.LocalExperts;
import dev.epic.model.quant.ConvertedWeights;
import dev.epic.model.quant.WeightFormat;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.Callable;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Quantises a checkpoint's linear weights once into {@code DIR/epic-q8} or {@code DIR/epic-q4} (one
 * EPICQNT1 file per tensor); later runs with {@code --weights q8|q4} map them instead of quantising.
 */
@Command(name = "quantize", mixinStandardHelpOptions = true,
        description = "Write q8/q4 copies of a checkpoint's linear weights next to it.")
public final class QuantizeCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @Option(names = "--model", required = true, paramLabel = "DIR", description = "checkpoint directory")
    Path model;

    @Option(names = "--format", required = true, paramLabel = "q8|q4", description = "q8 or q4")
    String format;

    @Override
    public Integer call() {
        PrintWriter err = spec.commandLine().getErr();
        WeightFormat f;
        try {
            f = switch (format.trim().toLowerCase(java.util.Locale.ROOT)) {
                case "q8" -> WeightFormat.Q8;
                case "q4" -> WeightFormat.Q4;
                default -> null;
            };
            if (f == null) {
                throw new IllegalArgumentException("--format must be q8 or q4, got '" + format + "'");
            }
            if (!Files.isDirectory(model)) {
                throw new IllegalArgumentException("model directory not found: " + model);
            }
        } catch (IllegalArgumentException e) {
            err.println("epic quantize: " + e.getMessage());
            err.flush();
            return LogitsCommand.BAD_INPUT;
        }
        try (Checkpoint checkpoint = Checkpoint.open(model)) {
            Path dir = model.resolve(f.cacheDirName());
            ConvertedWeights w = new ConvertedWeights(checkpoint, f, dir, true);
            // Building the model asks for every weight it uses, which converts and saves each one.
            var c = checkpoint.config();
            new Transformer(c, w, c.nRoutedExperts() != null ? LocalExperts.all(c, w) : null);
            err.println("epic quantize: " + w.summary());
            err.flush();
            return 0;
        } catch (CheckpointException | ConfigException | IllegalArgumentException e) {
            err.println("epic quantize: " + e.getMessage());
            err.flush();
            return LogitsCommand.BAD_INPUT;
        } catch (java.io.UncheckedIOException e) {
            err.println("epic quantize: " + e.getMessage() + ": " + e.getCause().getMessage());
            err.flush();
            return 1;
        }
    }
}
