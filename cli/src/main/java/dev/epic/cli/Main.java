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
            BenchExpertsCommand.class,
        })
public final class Main {
    public static void main(String[] args) {
        System.exit(commandLine().execute(args));
    }

    /**
     * The command line with its error handling: a refused input or an unusable device (an
     * IllegalArgumentException or CudaException) is one line naming the command, not a stack trace.
     */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler((e, command, parsed) -> {
            if (e instanceof IllegalArgumentException || e instanceof dev.epic.kernels.cuda.CudaException) {
                command.getErr().println("epic " + command.getCommandName() + ": " + e.getMessage());
                command.getErr().flush();
                return command.getCommandSpec().exitCodeOnExecutionException();
            }
            throw e;
        });
        return cl;
    }
}
