package dev.epic.cli;

import dev.epic.kernels.cuda.CudaException;
import dev.epic.model.checkpoint.CheckpointException;
import dev.epic.model.config.ConfigException;
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
            BatchCommand.class,
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
     * The command line with its error handling: refused input, a bad checkpoint or config, an
     * unusable GPU, or a port, address or ZooKeeper it cannot use is one line {@code epic <command>: <message>} and exit code 2, as the commands
     * that catch these themselves print them; anything else keeps its stack trace.
     */
    static CommandLine commandLine() {
        CommandLine cl = new CommandLine(new Main()).setCaseInsensitiveEnumValuesAllowed(true);
        cl.setExecutionExceptionHandler((e, command, parsed) -> {
            if (e instanceof IllegalArgumentException || e instanceof CheckpointException || e instanceof ConfigException
                    || e instanceof CudaException || e instanceof dev.epic.transport.StartupException) {
                command.getErr().println("epic " + command.getCommandName() + ": " + e.getMessage());
                command.getErr().flush();
                return LogitsCommand.BAD_INPUT;
            }
            throw e;
        });
        // Unparseable flags (--port abc, an unknown option) the same way, with a pointer to the usage
        // instead of picocli's default dump of it.
        cl.setParameterExceptionHandler((e, args) -> {
            String name = e.getCommandLine().getCommandSpec().qualifiedName();
            e.getCommandLine().getErr().println(name + ": " + e.getMessage() + " (see " + name + " --help)");
            e.getCommandLine().getErr().flush();
            return LogitsCommand.BAD_INPUT;
        });
        return cl;
    }
}
