package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.coordinator.scheduler.SchedulerOptions;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The serving commands take vLLM's names for the same settings, so a vLLM command line carries over. */
class SchedulerFlagsTest {
    private static SchedulerOptions local(String... args) {
        LocalCommand c = new LocalCommand();
        new CommandLine(c).parseArgs(args);
        return c.scheduler.options();
    }

    @Test
    void vllmNamesSetTheSameOptions() {
        assertEquals(3, local("--model", "m", "--max-num-seqs", "3").maxBatch());
        assertEquals(local("--model", "m", "--max-batch", "5"), local("--model", "m", "--max-num-seqs", "5"));
        assertEquals(0, local("--model", "m", "--no-enable-prefix-caching").prefixCacheBytes());
        assertEquals(local("--model", "m", "--prefix-cache-mb", "0"), local("--model", "m", "--no-enable-prefix-caching"));
        assertTrue(local("--model", "m", "--enable-prefix-caching").prefixCacheBytes() > 0, "on, as by default");
        assertEquals(SchedulerOptions.defaults().prefixCacheBytes(), local("--model", "m").prefixCacheBytes());

        CoordinatorCommand coordinator = new CoordinatorCommand();
        new CommandLine(coordinator).parseArgs("--model", "m", "--zk", "z", "--max-model-len", "4096",
                "--served-model-name", "deepseek-r1", "deepseek-ai/DeepSeek-R1", "--http-port", "8000");
        assertEquals(4096, coordinator.maxContext);
        assertEquals(java.util.List.of("deepseek-r1", "deepseek-ai/DeepSeek-R1"), coordinator.openai.servedModelName,
                "vLLM's several served names");
        assertEquals(8000, coordinator.openai.port);
    }
}
