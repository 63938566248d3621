package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** --allowed-origins: "*" by default, as vLLM's; a comma-separated list otherwise. */
class OpenAiFlagsTest {
    @CommandLine.Command(name = "t")
    static final class Holder {
        @CommandLine.Mixin
        OpenAiFlags openai;
    }

    private static List<String> parse(String... args) {
        Holder h = new Holder();
        new CommandLine(h).parseArgs(args);
        return OpenAiFlags.origins(h.openai.allowedOrigins);
    }

    @Test
    void allowedOriginsDefaultToAnyAndSplitOnCommas() {
        assertEquals(List.of("*"), parse());
        assertEquals(List.of("https://a.example", "http://localhost:3000"),
                parse("--allowed-origins", " https://a.example, ,http://localhost:3000"));
    }
}
