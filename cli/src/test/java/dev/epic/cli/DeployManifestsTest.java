package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/**
 * The container args in deploy/ parse as `epic` command lines, so a renamed or removed flag fails
 * here rather than in a crash-looping pod. The entry point's additions (the expert range) and the
 * overlays' appended args are applied first.
 */
class DeployManifestsTest {
    private static final Path DEPLOY = Path.of("..", "deploy");
    /** args: [ ... ] in flow style, possibly over several lines. */
    private static final Pattern ARGS = Pattern.compile("args:\\s*(\\[[^\\]]*\\])", Pattern.DOTALL);
    /** What the entry point or an overlay adds per command. */
    private static final Map<String, List<String>> ADDED = Map.of(
            "expert-worker", List.of("--experts", "0-63"), // entrypoint.sh, from EPIC_EXPERT_SHARDS
            "coordinator", List.of("--remote-attention")); // k8s-dp-attention's patch

    @Test
    void everyContainerCommandLineParses() throws IOException {
        List<List<String>> commands = new ArrayList<>();
        try (Stream<Path> files = Files.walk(DEPLOY)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".yaml")).toList()) {
                Matcher m = ARGS.matcher(Files.readString(f));
                while (m.find()) {
                    commands.add(List.of(new ObjectMapper().readValue(m.group(1), String[].class)));
                }
            }
        }
        assertEquals(List.of("attention-worker", "coordinator", "expert-worker"),
                commands.stream().map(List::getFirst).sorted().toList());
        for (List<String> args : commands) {
            List<String> all = new ArrayList<>(args);
            all.addAll(ADDED.getOrDefault(args.getFirst(), List.of()));
            assertDoesNotThrow(() -> new CommandLine(new Main()).parseArgs(all.toArray(String[]::new)),
                    () -> "deploy/ runs `epic " + String.join(" ", all) + "`");
        }
        assertFalse(commands.isEmpty());
    }

    @Test
    void anUnknownFlagWouldFail() {
        assertThrows(CommandLine.ParameterException.class,
                () -> new CommandLine(new Main()).parseArgs("coordinator", "--model", "m", "--zk", "z", "--no-such-flag"));
    }
}
