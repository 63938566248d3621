package dev.epic.cli;

import static dev.epic.cli.LogitsCommandTest.run;
import static dev.epic.cli.LogitsCommandTest.testdata;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class QuantizeCommandTest {
    @Test
    void writesOneFilePerConvertedTensorNextToTheCheckpoint(@TempDir Path tmp) throws Exception {
        Path model = tmp.resolve("tiny-v3");
        Files.createDirectories(model);
        try (var files = Files.list(testdata("tiny-v3"))) {
            for (Path f : files.toList()) {
                Files.createSymbolicLink(model.resolve(f.getFileName()), f.toAbsolutePath());
            }
        }
        LogitsCommandTest.Run r = run(new QuantizeCommand(), "--model", model.toString(), "--format", "q4");
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.isRegularFile(model.resolve("epic-q4/model.layers.3.mlp.experts.255.down_proj.weight.qnt")));
        assertTrue(r.err().contains("q4: "), r.err());
        // a bench run then maps them instead of quantising
        r = run(new BenchCommand(), "--model", model.toString(), "--batch", "1", "--prompt-len", "4", "--gen", "1",
                "--weights", "q4", "--json");
        assertEquals(0, r.code(), r.err());
    }

    @Test
    void rejectsOtherFormats() {
        LogitsCommandTest.Run r = run(new QuantizeCommand(), "--model", testdata("tiny-v3").toString(), "--format", "bf16");
        assertEquals(LogitsCommand.BAD_INPUT, r.code());
        assertTrue(r.err().contains("--format must be q8 or q4"), r.err());
    }
}
