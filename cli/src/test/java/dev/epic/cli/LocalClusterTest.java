package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;

/** epic local's wait for its worker processes: ready, or the first process that died, named. */
class LocalClusterTest {
    /** A real process that has already exited (java -version). */
    private static Process exited() throws Exception {
        Process p = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-version")
                .redirectErrorStream(true)
                .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
        p.waitFor();
        return p;
    }

    @Test
    void aDeadWorkerFailsTheWaitNamingIt() throws Exception {
        Process dead = exited();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> LocalCluster.await(
                wait -> false, Map.of(dead, "expert worker (experts 0-63, log /tmp/w0.log)"), () -> "never"));
        assertTrue(e.getMessage().startsWith("expert worker (experts 0-63, log /tmp/w0.log) exited with code "),
                e.getMessage());
    }

    @Test
    void readinessEndsTheWait() {
        AtomicInteger polls = new AtomicInteger();
        assertDoesNotThrow(() -> LocalCluster.await(wait -> polls.incrementAndGet() == 3, Map.of(), () -> "never"));
        assertEquals(3, polls.get());
    }
}
