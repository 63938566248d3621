package dev.epic.coordinator.scheduler;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.model.Golden;
import dev.epic.model.TestData;
import dev.epic.model.Transformer;
import dev.epic.model.checkpoint.Checkpoint;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * A request's result does not depend on the server's load: through the real scheduler, the same prompt
 * gives the same logits, bit for bit, alone with the whole prompt in one chunk, or queued among other
 * requests under a small prefill budget (its chunks shared with theirs, its decode steps batched with
 * theirs), or starting from a prefix another request left in the prefix cache. So a seeded or greedy
 * request gets the same tokens however busy the server is.
 */
class LoadInvarianceTest {
    @Test
    void theSameRequestGivesTheSameBitsAloneAndUnderLoad() throws Exception {
        List<Golden.Prompt> prompts = Golden.of("tiny-v3").prompts();
        int[] prompt = prompts.get(4).tokens(); // 300 tokens
        try (Checkpoint ck = Checkpoint.open(TestData.model("tiny-v3"))) {
            LogitsTask.Result alone;
            try (Scheduler s = new Scheduler(Transformer.load(ck), new SchedulerOptions(1, 4, 512, 0)).start()) {
                LogitsTask t = new LogitsTask(prompt, 12);
                s.submit(t);
                alone = t.result().get(60, TimeUnit.SECONDS);
            }
            try (Scheduler s = new Scheduler(Transformer.load(ck), new SchedulerOptions(8, 16, 37, 64L << 20)).start()) {
                List<LogitsTask> others = new ArrayList<>();
                for (int i = 0; i < prompts.size(); i++) {
                    if (i != 4) {
                        others.add(new LogitsTask(prompts.get(i).tokens(), 20));
                    }
                }
                others.add(new LogitsTask(Arrays.copyOf(prompt, 100), 3)); // leaves a prefix of the prompt cached
                others.forEach(s::submit);
                LogitsTask busy = new LogitsTask(prompt, 12);
                s.submit(busy);
                assertSame(alone, busy.result().get(60, TimeUnit.SECONDS), "among other requests");
                for (LogitsTask o : others) {
                    o.result().get(60, TimeUnit.SECONDS);
                }
                LogitsTask fromPrefix = new LogitsTask(prompt, 12);
                s.submit(fromPrefix);
                assertSame(alone, fromPrefix.result().get(60, TimeUnit.SECONDS), "from the prefix cache");
                assertTrue(s.prefixCache().hitTokens() >= 96, "prefix hits: " + s.prefixCache().hitTokens());
            }
        }
    }

    private static void assertSame(LogitsTask.Result want, LogitsTask.Result got, String how) {
        assertArrayEquals(want.argmax(), got.argmax(), how);
        for (int k = 0; k < want.logits().size(); k++) {
            assertArrayEquals(want.logits().get(k), got.logits().get(k), how + ": logits " + k);
        }
    }
}
