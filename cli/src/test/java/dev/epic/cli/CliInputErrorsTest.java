package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Bad flags, through the real command line: one line {@code epic <command>: ...} and exit code 2. */
class CliInputErrorsTest {
    private static final String MODEL = GpuCommandsTest.model();

    private static void refused(String expectedStart, String fragment, String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        var cl = Main.commandLine();
        cl.setOut(new PrintWriter(out));
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        List<String> lines = err.toString().lines().toList();
        assertEquals(2, code, err.toString());
        assertEquals(1, lines.size(), err.toString());
        assertTrue(lines.getFirst().startsWith(expectedStart), err.toString());
        assertTrue(lines.getFirst().contains(fragment), err.toString());
        assertFalse(err.toString().contains("\tat "), err.toString());
        assertEquals("", out.toString());
    }

    @Test
    void unparseableFlagsPointToHelp() {
        refused("epic local: ", "'abc'", "local", "--model", MODEL, "--port", "abc");
        refused("epic local: ", "epic local --help", "local", "--model", MODEL, "--port", "abc");
        refused("epic coordinator: ", "--no-such-flag", "coordinator", "--model", MODEL, "--zk", "127.0.0.1:1",
                "--no-such-flag");
        refused("epic: ", "epic --help", "no-such-command");
    }

    @Test
    void generateRefusesAMissingSchemaFileAndANonPositiveTimeout(@TempDir Path tmp) {
        Path missing = tmp.resolve("missing.json");
        refused("epic generate: ", missing.toString(), "generate", "--target", "127.0.0.1:1", "--prompt", "x",
                "--json-schema", missing.toString());
        refused("epic generate: ", "--grammar: no such file", "generate", "--target", "127.0.0.1:1", "--prompt", "x",
                "--grammar", tmp.resolve("missing.gbnf").toString());
        refused("epic generate: ", "--timeout-s", "generate", "--target", "127.0.0.1:1", "--prompt", "x",
                "--timeout-s", "0");
    }

    /** Checked before the model loads: the model directory here does not even exist. */
    @Test
    void generateRefusesBadSamplingBeforeLoadingTheModel(@TempDir Path tmp) {
        String none = tmp.resolve("no-model").toString();
        refused("epic generate: ", "temperature", "generate", "--model", none, "--prompt", "x", "--temperature", "-1");
        refused("epic generate: ", "top_p", "generate", "--model", none, "--prompt", "x", "--top-p", "2");
    }

    @Test
    void coordinatorAndLocalRefuseOutOfRangeNumbers() {
        String[] base = {"coordinator", "--model", MODEL, "--zk", "127.0.0.1:1"};
        refused("epic coordinator: ", "--max-context", concat(base, "--max-context", "-1"));
        refused("epic coordinator: ", "--expert-deadline-ms", concat(base, "--expert-deadline-ms", "0"));
        refused("epic coordinator: ", "--attention-deadline-ms", concat(base, "--attention-deadline-ms", "-5"));
        refused("epic coordinator: ", "--rebalance-seconds", concat(base, "--rebalance-seconds", "-1"));
        refused("epic local: ", "--rebalance-seconds", "local", "--model", MODEL, "--rebalance-seconds", "-1");
    }

    @Test
    void anUnknownKvCacheDtypeIsRefusedNamingTheChoices() {
        String choices = "--kv-cache-dtype must be auto, fp32 or bf16, got 'fp8'";
        refused("epic coordinator: ", choices, "coordinator", "--model", MODEL, "--zk", "127.0.0.1:1",
                "--kv-cache-dtype", "fp8");
        refused("epic local: ", choices, "local", "--model", MODEL, "--kv-cache-dtype", "fp8");
        refused("epic attention-worker: ", choices, "attention-worker", "--model", MODEL, "--zk", "127.0.0.1:1",
                "--kv-cache-dtype", "fp8");
    }

    @Test
    void aPrefixCacheDiskIsRefusedWhereItCannotBeKept(@org.junit.jupiter.api.io.TempDir Path tmp) {
        String dir = tmp.resolve("prefixes").toString();
        String remote = "--prefix-cache-disk keeps the blocks of the coordinator's own caches: with attention workers "
                + "the blocks are kept on them, in memory";
        refused("epic coordinator: ", remote, "coordinator", "--model", MODEL, "--zk", "127.0.0.1:1",
                "--remote-attention", "--prefix-cache-disk", dir);
        refused("epic local: ", remote, "local", "--model", MODEL, "--attention-workers", "1",
                "--prefix-cache-disk", dir);
        refused("epic local: ", "--prefix-cache-disk needs the prefix cache, which --prefix-cache-mb 0 turns off",
                "local", "--model", MODEL, "--prefix-cache-mb", "0", "--prefix-cache-disk", dir);
        refused("epic local: ", "--prefix-cache-disk needs the prefix cache, which --no-enable-prefix-caching turns off",
                "local", "--model", MODEL, "--no-enable-prefix-caching", "--prefix-cache-disk", dir);
        refused("epic coordinator: ", "--no-enable-prefix-caching turns off the prefix cache that --prefix-cache-mb 64 "
                + "sizes", "coordinator", "--model", MODEL, "--zk", "127.0.0.1:1", "--no-enable-prefix-caching",
                "--prefix-cache-mb", "64");
        refused("epic local: ", "--prefix-cache-disk /proc/epic-prefixes cannot be made a directory", "local",
                "--model", MODEL, "--prefix-cache-disk", "/proc/epic-prefixes");
        refused("epic coordinator: ", "--prefix-cache-disk-mb must be >= 1, got 0", "coordinator", "--model", MODEL,
                "--zk", "127.0.0.1:1", "--prefix-cache-disk", dir, "--prefix-cache-disk-mb", "0");
    }

    @Test
    void mtpDraftsAreRefusedWhereTheyCannotRun() {
        String fp8 = Path.of(MODEL).resolveSibling("tiny-v3-fp8").toString(); // no MTP layer
        refused("epic local: ", "--speculative-method must be ngram or mtp, got 'eagle'", "local", "--model", MODEL,
                "--speculative-method", "eagle");
        refused("epic local: ", "--scheduling-policy must be fcfs or priority, got 'lifo'", "local", "--model", MODEL,
                "--scheduling-policy", "lifo");
        refused("epic local: ", "--num-speculative-tokens must be >= 0", "local", "--model", MODEL,
                "--speculative-method", "mtp", "--num-speculative-tokens", "-1");
        refused("epic local: ", "num_nextn_predict_layers is 0", "local", "--model", fp8, "--speculative-method", "mtp",
                "--attention-workers", "1");
        refused("epic local: ", "num_nextn_predict_layers is 0", "local", "--model", fp8, "--speculative-method", "mtp");
        refused("epic coordinator: ", "num_nextn_predict_layers is 0", "coordinator", "--model", fp8,
                "--zk", "127.0.0.1:1", "--speculative-method", "mtp");
        refused("epic generate: ", "num_nextn_predict_layers is 0", "generate", "--model", fp8, "--prompt", "x",
                "--speculative-method", "mtp");
        refused("epic generate: ", "--prefix needs --chat", "generate", "--model", MODEL, "--prompt", "x", "--prefix", "y");
        refused("epic generate: ", "--suffix needs --prompt and no --chat", "generate", "--model", MODEL, "--chat",
                "--prompt", "x", "--suffix", "y");
        // An expert worker asked for the MTP layer's experts: the checkpoint must have the layer, and (for now) the CPU.
        refused("epic expert-worker: ", "--mtp-layer: the checkpoint has no multi-token-prediction layer", "expert-worker",
                "--model", fp8, "--experts", "0-3", "--zk", "127.0.0.1:1", "--port", "0", "--mtp-layer");
        refused("epic expert-worker: ", "--mtp-layer needs --device cpu", "expert-worker", "--model", MODEL,
                "--experts", "0-3", "--zk", "127.0.0.1:1", "--port", "0", "--mtp-layer", "--device", "cuda");
    }

    @Test
    void synthIntoARegularFileIsRefused(@TempDir Path tmp) throws Exception {
        Path file = Files.writeString(tmp.resolve("plain-file"), "x");
        refused("epic synth: ", "plain-file", "synth", "--config", "tiny-v3", "--out", file.toString());
    }

    /** Worker flags that would fail later (or announce an address nobody reaches) are refused up front. */
    @Test
    void workersRefuseBadDrainTimeoutAndHost() {
        String[] base = {"expert-worker", "--model", MODEL, "--experts", "0-3", "--zk", "127.0.0.1:1", "--port", "0"};
        refused("epic expert-worker: ", "--drain-ms", concat(base, "--drain-ms", "-5"));
        refused("epic expert-worker: ", "--zk-session-timeout-ms", concat(base, "--zk-session-timeout-ms", "0"));
        refused("epic expert-worker: ", "wildcard", concat(base, "--host", "0.0.0.0"));
        refused("epic expert-worker: ", "does not resolve", concat(base, "--host", "no.such.host.invalid"));
        refused("epic attention-worker: ", "--drain-ms", "attention-worker", "--model", MODEL, "--zk", "127.0.0.1:1",
                "--port", "0", "--drain-ms", "-1");
        // An address this machine does not have is not a port in use.
        refused("epic expert-worker: ", "an address of this machine", "expert-worker", "--model", MODEL, "--experts", "0-3", "--zk",
                "127.0.0.1:1", "--port", "50999", "--host", "192.0.2.1");
    }

    /**
     * A worker that cannot reach ZooKeeper says so in one line once it has read the model's headers,
     * before its weights load (which may take an hour), waiting for it the session timeout.
     */
    @Test
    void anUnreachableZooKeeperIsOneLineBeforeTheWeightsLoad() {
        String[] zk = {"--zk", "127.0.0.1:1", "--zk-session-timeout-ms", "1000", "--port", "0"};
        refused("epic expert-worker: ", "cannot connect to ZooKeeper at 127.0.0.1:1 within 1000 ms",
                concat(new String[] {"expert-worker", "--model", MODEL, "--experts", "0-3"}, zk));
        refused("epic attention-worker: ", "cannot connect to ZooKeeper at 127.0.0.1:1 within 1000 ms",
                concat(new String[] {"attention-worker", "--model", MODEL}, zk));
    }

    /** A coordinator (or epic local) whose port is taken or out of range, or whose host does not resolve, says so in one line, before loading anything. */
    @Test
    void takenPortsAreOneLine() throws Exception {
        try (java.net.ServerSocket taken = new java.net.ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
            String port = String.valueOf(taken.getLocalPort());
            refused("epic coordinator: ", "port " + port + " on 127.0.0.1 is in use", "coordinator", "--model", MODEL,
                    "--zk", "127.0.0.1:1", "--host", "127.0.0.1", "--port", port);
            refused("epic coordinator: ", "is in use", "coordinator", "--model", MODEL, "--zk", "127.0.0.1:1",
                    "--host", "127.0.0.1", "--port", "0", "--http-port", port);
            refused("epic local: ", "is in use", "local", "--model", MODEL, "--port", port);
        }
        refused("epic coordinator: ", "--port must be in [0, 65535]", "coordinator", "--model", MODEL, "--zk",
                "127.0.0.1:1", "--port", "70000");
        refused("epic local: ", "--http-port must be in [0, 65535]", "local", "--model", MODEL, "--http-port", "70000");
        refused("epic local: ", "--served-model-name must not be blank", "local", "--model", MODEL,
                "--served-model-name", "deepseek-r1", " ");
        refused("epic coordinator: ", "--served-model-name must not be blank", "coordinator", "--model", MODEL,
                "--zk", "127.0.0.1:1", "--served-model-name", "");
        refused("epic coordinator: ", "does not resolve", "coordinator", "--model", MODEL, "--zk", "127.0.0.1:1",
                "--host", "no.such.host.invalid", "--port", "50998");
    }

    private static String[] concat(String[] a, String... b) {
        String[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
