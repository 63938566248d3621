package dev.epic.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

/**
 * {@code epic demo}, the README's main job, as a real process on a demo-v3 model: the whole cluster
 * (ZooKeeper, expert workers, an attention worker, coordinator) comes up, streams a chat answer of
 * the asked length through the public API, and shuts down.
 */
class DemoIT {
    @Test
    @Timeout(value = 240, unit = TimeUnit.SECONDS)
    void demoStreamsAnAnswerThroughTheWholeCluster() throws Exception {
        Path model = EpicLocal.demoModel();
        Path log = EpicLocal.logFile("demo");
        Process p = new ProcessBuilder(EpicLocal.java("demo", "--dir", model.toString(), "--max-tokens", "12"))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        assertTrue(p.waitFor(200, TimeUnit.SECONDS), "demo did not finish");
        String out = Files.readString(log, StandardCharsets.UTF_8);
        assertEquals(0, p.exitValue(), out);
        assertTrue(out.contains("expert worker pid"), out);
        assertTrue(out.contains("attention worker pid"), out);
        assertTrue(out.contains("[assistant]"), out);
        assertTrue(out.contains("[finish: length; prompt 25 tokens, completion 12 tokens"), out);
        assertTrue(out.contains("== demo finished"), out);
    }
}
