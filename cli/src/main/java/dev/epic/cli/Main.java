package dev.epic.cli;

import picocli.CommandLine;
import picocli.CommandLine.Command;

/** The {@code epic} command line: one subcommand per job, each in its own class. */
@Command(name = "epic", mixinStandardHelpOptions = true, version = "epic 0.1.0",
        description = "EPIC: an expert-parallel inference cluster for DeepSeek-V3/R1 models.",
        subcommands = {
            CommandLine.HelpCommand.class,
            TokenizeCommand.class,
            ChatTemplateCommand.class,
            SynthCommand.class,
            LogitsCommand.class,
            ExpertWorkerCommand.class,
            AttentionWorkerCommand.class,
            CoordinatorCommand.class,
            LocalCommand.class,
            GenerateCommand.class,
            StatusCommand.class,
            DemoCommand.class,
            BenchCommand.class,
            QuantizeCommand.class,
        })
public final class Main {
    public static void main(String[] args) {
        int code = new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true).execute(args);
        System.exit(code);
    }
}
