package dev.epic.cli;

import dev.epic.coordinator.CoordinatorServer;
import dev.epic.model.KvCacheDtype;
import dev.epic.coordinator.scheduler.SchedulerOptions;
import dev.epic.proto.ChatMessage;
import dev.epic.proto.GenerateRequest;
import dev.epic.proto.ResponseFormat;
import dev.epic.proto.GenerateResponse;
import dev.epic.proto.GenerationServiceGrpc;
import dev.epic.proto.Messages;
import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Command;
import picocli.CommandLine.ArgGroup;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Model.CommandSpec;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

/**
 * {@code epic generate}: streams one completion to the terminal. With {@code --model} the same
 * GenerationService runs in this process (all experts local) and is called over loopback gRPC, so
 * both modes share one code path.
 */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = {"Stream a completion: reasoning shown apart from the answer, tool calls printed, tokens/s at the end.",
            "--chat renders the user message (from --prompt, or stdin) with the model's chat template."})
public final class GenerateCommand implements Callable<Integer> {
    @Spec
    CommandSpec spec;

    @ArgGroup(exclusive = true, multiplicity = "1")
    ModelOrTarget source;

    @Option(names = "--prompt", paramLabel = "TEXT", description = "prompt text (with --chat: the user message; default: stdin)")
    String prompt;

    @Option(names = "--chat", description = "render --prompt / stdin as a user turn with the chat template")
    boolean chat;

    @Option(names = "--system", paramLabel = "TEXT", description = "system message (with --chat)")
    String system;

    @Option(names = "--no-think", description = "with --chat: ask the model to skip its thinking block")
    boolean noThink;

    @Option(names = "--prefix", paramLabel = "TEXT", description = "with --chat: the start of the answer, which the model "
            + "continues (an assistant message continued: vLLM's continue_final_message, DeepSeek's prefix completion)")
    String prefix;

    @Option(names = "--suffix", paramLabel = "TEXT", description = "without --chat: fill in the middle (DeepSeek's FIM "
            + "completion): the answer is what goes between --prompt and TEXT")
    String suffix;

    @Option(names = "--priority", defaultValue = "0", paramLabel = "N", description = "the request's scheduling "
            + "priority, lower first: taken by a coordinator started with --scheduling-policy priority, refused by "
            + "others unless 0 (default ${DEFAULT-VALUE})")
    int priority;

    @Option(names = "--timeout-s", defaultValue = "600", paramLabel = "S", description = "request deadline (default ${DEFAULT-VALUE})")
    long timeoutS;

    @Mixin
    SamplingOptions sampling;

    @Mixin
    KvCacheFlags kvCache; // with --model, as --speculation

    @Mixin
    SpeculationFlags speculation; // with --model; a --target coordinator speculates as it was started

    @Option(names = "--chat-template", paramLabel = "FILE|TEXT", description = "with --chat: render it with this Jinja "
            + "template (a file, or its text); a --target coordinator must be started with --trust-request-chat-template")
    String chatTemplate;

    @ArgGroup(exclusive = true)
    Format format;

    /** The answer's form: free text by default, or held to one of these by constrained decoding. */
    static final class Format {
        @Option(names = "--json", description = "the answer is a JSON object (JSON mode)")
        boolean json;

        @Option(names = "--json-schema", paramLabel = "SCHEMA", description = "the answer is a JSON value matching SCHEMA "
                + "(JSON text, or a file holding it)")
        String schema;

        @Option(names = "--regex", paramLabel = "RE", description = "the whole answer matches RE (ECMA-262 syntax)")
        String regex;

        @Option(names = "--choice", paramLabel = "TEXT", description = "the answer is exactly one of these (repeatable)")
        List<String> choices;

        @Option(names = "--grammar", paramLabel = "GBNF", description = "the whole answer matches rule root of this "
                + "GBNF grammar (its text, or a file holding it)")
        String grammar;

        /** A missing or unreadable file is bad input: one line naming it, not a stack trace. */
        private static String readFile(String option, String file, String orText) {
            try {
                return Files.readString(Path.of(file));
            } catch (java.nio.file.NoSuchFileException e) {
                throw new IllegalArgumentException(option + ": no such file " + file + " (give a file, or " + orText + ")");
            } catch (IOException | java.nio.file.InvalidPathException e) {
                throw new IllegalArgumentException(option + ": cannot read " + file + ": " + e.getMessage());
            }
        }

        ResponseFormat toProto() throws IOException {
            ResponseFormat.Builder f = ResponseFormat.newBuilder();
            if (json) {
                return f.setType(ResponseFormat.Type.JSON_OBJECT).build();
            }
            if (schema != null) {
                String text = schema.strip().startsWith("{") || schema.strip().equals("true") ? schema
                        : readFile("--json-schema", schema, "the schema's JSON text starting with '{'");
                return f.setType(ResponseFormat.Type.JSON_SCHEMA).setJsonSchema(text).build();
            }
            if (regex != null) {
                return f.setType(ResponseFormat.Type.REGEX).setRegex(regex).build();
            }
            if (grammar != null) { // a grammar's text defines a rule; a file name cannot
                String text = grammar.contains("::=") ? grammar
                        : readFile("--grammar", grammar, "the grammar's text, with 'root ::= ...'");
                return f.setType(ResponseFormat.Type.GRAMMAR).setGrammar(text).build();
            }
            return f.setType(ResponseFormat.Type.CHOICE).addAllChoices(choices).build();
        }
    }

    @Override
    public Integer call() throws Exception {
        PrintWriter err = spec.commandLine().getErr();
        GenerateRequest request;
        SchedulerOptions options;
        KvCacheDtype kvCacheDtype;
        try {
            request = request();
            // In process, a priority is taken (a lone request: it changes no order).
            options = SchedulerOptions.defaults().withSpeculation(speculation.lookup()).withPriorities(priority != 0);
            kvCacheDtype = kvCache.dtype();
            if (source.model != null && options.speculation().mtp()) {
                SpeculationFlags.requireMtpLayer(options.speculation(), dev.epic.model.config.ModelConfig.load(source.model));
            }
        } catch (IllegalArgumentException | dev.epic.model.config.ConfigException e) {
            err.println("epic generate: " + e.getMessage());
            err.flush();
            return LogitsCommand.BAD_INPUT;
        }
        // In process the template is the served one; a coordinator takes it with the request (when it trusts them).
        CoordinatorServer local = source.startLocal(options, kvCacheDtype, m -> m.withChatTemplate(chatTemplate));
        ManagedChannel channel = Channels.open(source.target(local));
        try {
            return stream(channel, request, spec.commandLine().getOut(), err, System.console() != null, timeoutS);
        } finally {
            channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
            if (local != null) {
                local.close();
            }
        }
    }

    private GenerateRequest request() throws IOException {
        Flags.requirePositive("--timeout-s", timeoutS);
        if (system != null && !chat) {
            throw new IllegalArgumentException("--system needs --chat");
        }
        if (prefix != null && !chat) {
            throw new IllegalArgumentException("--prefix needs --chat (without it, put the text in --prompt)");
        }
        if (suffix != null && (chat || prompt == null)) {
            throw new IllegalArgumentException("--suffix needs --prompt and no --chat (it fills in the middle of a text)");
        }
        String text = prompt;
        if (text == null) {
            if (!chat) {
                throw new IllegalArgumentException("give --prompt TEXT (or --chat to read the user message from stdin)");
            }
            text = new String(System.in.readAllBytes(), StandardCharsets.UTF_8).strip();
        }
        dev.epic.proto.SamplingParams params = sampling.toProto();
        // The server's own check, here: a bad value is refused before --model loads a whole model.
        try {
            dev.epic.coordinator.api.GenerationServiceImpl.sampling(params);
        } catch (io.grpc.StatusRuntimeException e) {
            throw new IllegalArgumentException(e.getStatus().getDescription());
        }
        GenerateRequest.Builder b = GenerateRequest.newBuilder().setSampling(params).setPriority(priority);
        if (format != null) {
            b.setResponseFormat(format.toProto());
        }
        if (chat) {
            Messages.Builder m = Messages.newBuilder();
            if (system != null) {
                m.addMessages(ChatMessage.newBuilder().setRole("system").setContent(system));
            }
            m.addMessages(ChatMessage.newBuilder().setRole("user").setContent(text));
            if (prefix != null) {
                m.addMessages(ChatMessage.newBuilder().setRole("assistant").setContent(prefix));
                b.setContinueFinalMessage(true);
            }
            b.setChat(m);
            if (chatTemplate != null && source.model == null) { // with --model it is the served template
                b.setChatTemplate(dev.epic.text.chat.ChatTemplate.fromArgument(chatTemplate, null).template());
            }
            if (noThink) {
                b.setEnableThinking(false);
            }
        } else {
            if (chatTemplate != null) {
                throw new IllegalArgumentException("--chat-template renders a --chat prompt");
            }
            b.setText(text);
            if (suffix != null) { // the FIM frame after BOS, as DeepSeek's models were trained on it
                b.setSuffix(suffix).setAddSpecialTokens(true);
            }
        }
        return b.build();
    }

    /** Streams one request to {@code out}; the summary goes to {@code err}. Returns the exit code. */
    static int stream(ManagedChannel channel, GenerateRequest request, PrintWriter out, PrintWriter err, boolean ansi,
            long timeoutS) {
        StreamPrinter printer = new StreamPrinter(out, ansi);
        try {
            Iterator<GenerateResponse> it = GenerationServiceGrpc.newBlockingStub(channel)
                    .withDeadlineAfter(timeoutS, TimeUnit.SECONDS).generate(request);
            it.forEachRemaining(printer::accept);
        } catch (StatusRuntimeException e) {
            out.println();
            out.flush();
            err.println("epic generate: " + dev.epic.transport.StatusText.of(e.getStatus()));
            err.flush();
            return 1;
        }
        out.println();
        out.flush();
        err.println(printer.summary());
        err.flush();
        return 0;
    }
}
