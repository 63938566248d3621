package dev.epic.cli;

import dev.epic.model.config.ConfigException;
import dev.epic.model.config.ModelConfig;
import dev.epic.model.synth.Presets;
import dev.epic.model.synth.SyntheticCheckpoint;
import dev.epic.model.synth.SyntheticCheckpoint.Options;
import dev.epic.model.synth.SyntheticCheckpoint.WeightDtype;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.concurrent.Callable;
import java.util.zip.GZIPInputStream;
import picocli.CommandLine.Command;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * Writes a random-weight checkpoint in the Hugging Face DeepSeek-V3 layout. With a V3-sized
 * vocabulary (>= 128815) the real DeepSeek-V3 tokenizer shipped with epic-text is copied next to it,
 * so the text pipeline works on the synthetic model.
 */
@Command(name = "synth", mixinStandardHelpOptions = true,
        description = "Write a synthetic (random-weight) DeepSeek-V3-layout checkpoint.")
public final class SynthCommand implements Callable<Integer> {
    /** Vocabulary size of the DeepSeek-V3 tokenizer (ids of all its tokens, added ones included). */
    static final int V3_TOKENIZER_VOCAB = 128815;
    private static final String TOKENIZER_RESOURCES = "dev/epic/text/deepseek-v3/";

    @Spec
    CommandSpec spec;

    @Option(names = "--config", required = true, paramLabel = "PRESET|FILE",
            description = "tiny-v3, bench-v3, demo-v3, or a config.json file")
    String config;

    @Option(names = "--out", required = true, paramLabel = "DIR", description = "output directory")
    Path out;

    @Option(names = "--force", description = "write into a non-empty --out, replacing its files")
    boolean force;

    @Option(names = "--dtype", defaultValue = "bf16", paramLabel = "bf16|fp8",
            description = "weight storage: bf16, or fp8 e4m3 with 128x128 block scales (default bf16)")
    String dtype;

    @Option(names = "--seed", defaultValue = "0", paramLabel = "N", description = "random seed (default 0)")
    long seed;

    @Option(names = "--max-shard-mb", defaultValue = "400", paramLabel = "MB",
            description = "start a new shard beyond this size (default 400)")
    long maxShardMb;

    @Override
    public Integer call() throws IOException {
        PrintWriter err = spec.commandLine().getErr();
        ModelConfig base = Presets.byName(config);
        WeightDtype weights;
        try {
            if (base == null) {
                Path file = Path.of(config);
                if (!Files.isRegularFile(file)) {
                    throw new IllegalArgumentException("--config must be one of " + Presets.names()
                            + " or an existing config.json, got '" + config + "'");
                }
                base = ModelConfig.load(file);
            }
            weights = switch (dtype.toLowerCase(java.util.Locale.ROOT)) {
                case "bf16" -> WeightDtype.BF16;
                case "fp8" -> WeightDtype.FP8;
                default -> throw new IllegalArgumentException("--dtype must be bf16 or fp8, got '" + dtype + "'");
            };
            if (maxShardMb <= 0) {
                throw new IllegalArgumentException("--max-shard-mb must be positive");
            }
            requireUsableOut();
        } catch (IllegalArgumentException | ConfigException e) {
            err.println("epic synth: " + e.getMessage());
            err.flush();
            return LogitsCommand.BAD_INPUT;
        }

        ProgressBar bar = new ProgressBar(err);
        var result = SyntheticCheckpoint.write(base, out, new Options(weights, seed, maxShardMb << 20), bar);
        bar.finish();
        if (base.vocabSize() >= V3_TOKENIZER_VOCAB) {
            copyTokenizer(out);
        }
        err.printf("epic synth: wrote %d tensors (%.1f MB) in %d shard(s) to %s%n", result.tensors(),
                result.totalBytes() / 1048576.0, result.shards().size(), out);
        err.flush();
        return 0;
    }

    /**
     * synth replaces config.json, the index and the tokenizer files in place: into a directory that
     * already holds a checkpoint it would silently turn it into random weights, so that needs --force.
     */
    private void requireUsableOut() {
        if (Files.exists(out) && !Files.isDirectory(out)) {
            throw new IllegalArgumentException("--out " + out + " is a file, not a directory");
        }
        if (!force && Files.isDirectory(out)) {
            try (var entries = Files.list(out)) {
                if (entries.findAny().isPresent()) {
                    throw new IllegalArgumentException("--out " + out
                            + " is not empty (it may hold a checkpoint); use --force to overwrite it");
                }
            } catch (IOException e) {
                throw new IllegalArgumentException("cannot read --out " + out + ": " + e.getMessage(), e);
            }
        }
    }

    /** tokenizer.json (stored gzipped in epic-text) and tokenizer_config.json. */
    static void copyTokenizer(Path dir) throws IOException {
        try (InputStream gz = resource("tokenizer.json.gz"); InputStream json = new GZIPInputStream(gz)) {
            Files.copy(json, dir.resolve("tokenizer.json"), StandardCopyOption.REPLACE_EXISTING);
        }
        try (InputStream cfg = resource("tokenizer_config.json")) {
            Files.copy(cfg, dir.resolve("tokenizer_config.json"), StandardCopyOption.REPLACE_EXISTING);
        }
    }

    private static InputStream resource(String name) throws IOException {
        InputStream in = SynthCommand.class.getClassLoader().getResourceAsStream(TOKENIZER_RESOURCES + name);
        if (in == null) {
            throw new IOException("tokenizer resource " + TOKENIZER_RESOURCES + name + " not on the classpath");
        }
        return in;
    }

    /** A one-line progress bar on stderr, redrawn when the percentage changes. */
    private static final class ProgressBar implements SyntheticCheckpoint.Progress {
        private final PrintWriter err;
        private int shown = -1;

        ProgressBar(PrintWriter err) {
            this.err = err;
        }

        @Override
        public void update(long done, long total) {
            int pct = (int) (100 * done / Math.max(1, total));
            if (pct == shown) {
                return;
            }
            shown = pct;
            int width = 40;
            int filled = pct * width / 100;
            err.printf("\r[%s%s] %3d%% %,d / %,d MB", "#".repeat(filled), " ".repeat(width - filled), pct,
                    done >> 20, total >> 20);
            err.flush();
        }

        void finish() {
            err.println();
        }
    }
}
