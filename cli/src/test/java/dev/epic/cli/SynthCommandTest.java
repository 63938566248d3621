package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.epic.model.checkpoint.Checkpoint;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SynthCommandTest {
    @Test
    void writesTinyPresetThatLogitsCanRun(@TempDir Path tmp) {
        Path out = tmp.resolve("tiny");
        LogitsCommandTest.Run r = LogitsCommandTest.run(new SynthCommand(), "--config", "tiny-v3", "--out",
                out.toString(), "--dtype", "fp8", "--seed", "3");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("100%"), r.err());
        assertTrue(Files.isRegularFile(out.resolve("model.safetensors.index.json")));
        assertFalse(Files.exists(out.resolve("tokenizer.json")), "tiny vocabulary: no tokenizer");
        try (Checkpoint ck = Checkpoint.open(out)) {
            assertEquals(Checkpoint.class, ck.getClass());
            assertTrue(ck.config().isFp8());
        }
        LogitsCommandTest.Run logits = LogitsCommandTest.run(new LogitsCommand(), "--model", out.toString(), "--ids",
                "5,17,4", "--steps", "1");
        assertEquals(0, logits.code(), logits.err());
        assertEquals(2, logits.out().lines().count());
    }

    @Test
    void copiesTheTokenizerForV3Vocabulary(@TempDir Path tmp) throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode c = (ObjectNode) json.readTree(LogitsCommandTest.testdata("tiny-v3").resolve("config.json").toFile());
        c.put("vocab_size", 129280);
        c.put("num_hidden_layers", 1);
        c.put("num_nextn_predict_layers", 0);
        Path file = tmp.resolve("wide-vocab.json");
        json.writeValue(file.toFile(), c);
        Path out = tmp.resolve("model");
        LogitsCommandTest.Run r = LogitsCommandTest.run(new SynthCommand(), "--config", file.toString(), "--out",
                out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(json.readTree(out.resolve("tokenizer.json").toFile()).has("model"));
        assertTrue(json.readTree(out.resolve("tokenizer_config.json").toFile()).has("chat_template"));
    }

    /** The help names every preset there is. */
    @Test
    void helpListsEveryPreset() {
        String help = String.join(" ", new picocli.CommandLine(new Main()).getSubcommands().get("synth").getCommandSpec()
                .findOption("--config").description());
        for (String preset : dev.epic.model.synth.Presets.names()) {
            assertTrue(help.contains(preset), preset + " missing from: " + help);
        }
    }

    @Test
    void rejectsUnknownPresetAndDtype(@TempDir Path tmp) {
        LogitsCommandTest.assertBadInput(LogitsCommandTest.run(new SynthCommand(), "--config", "huge-v9", "--out",
                tmp.toString()), "huge-v9");
        LogitsCommandTest.assertBadInput(LogitsCommandTest.run(new SynthCommand(), "--config", "tiny-v3", "--out",
                tmp.toString(), "--dtype", "int3"), "int3");
    }

    @Test
    void refusesANonEmptyOutWithoutForce(@TempDir Path tmp) throws Exception {
        Path out = tmp.resolve("tiny");
        Files.createDirectories(out);
        Files.writeString(out.resolve("config.json"), "{\"model_type\": \"deepseek_v3\"}");
        LogitsCommandTest.assertBadInput(LogitsCommandTest.run(new SynthCommand(), "--config", "tiny-v3", "--out",
                out.toString()), "--force");
        assertEquals("{\"model_type\": \"deepseek_v3\"}", Files.readString(out.resolve("config.json")));

        LogitsCommandTest.Run r = LogitsCommandTest.run(new SynthCommand(), "--config", "tiny-v3", "--out",
                out.toString(), "--force");
        assertEquals(0, r.code(), r.err());
        try (Checkpoint ck = Checkpoint.open(out)) {
            assertEquals(64, ck.config().hiddenSize());
        }
    }

    @Test
    void refusesAnOutThatIsAFile(@TempDir Path tmp) throws Exception {
        Path file = Files.writeString(tmp.resolve("not-a-dir"), "x");
        LogitsCommandTest.assertBadInput(LogitsCommandTest.run(new SynthCommand(), "--config", "tiny-v3", "--out",
                file.toString(), "--force"), "not-a-dir");
    }
}
