package dev.epic.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.kernels.cuda.Cuda;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import picocli.CommandLine;

/** The GPU flags refuse what cannot work with one clear line (the GPU paths themselves: CudaShardTest). */
class GpuCommandsTest {
    record Run(int code, String err) {}

    static Run run(String... args) {
        StringWriter err = new StringWriter();
        CommandLine cl = Main.commandLine();
        cl.setErr(new PrintWriter(err));
        int code = cl.execute(args);
        return new Run(code, err.toString());
    }

    static String model() {
        return Path.of(System.getProperty("epic.testdata", "../testdata")).resolve("tiny-v3").toString();
    }

    static void refused(Run r, String expected) {
        assertNotEquals(0, r.code(), r.err());
        assertTrue(r.err().contains(expected), r.err());
        assertTrue(!r.err().contains("\tat "), "one line, no stack trace: " + r.err());
    }

    @Test
    void expertWorkerDeviceFlagsAreChecked() {
        String[] base = {"expert-worker", "--model", model(), "--experts", "0-3", "--zk", "127.0.0.1:1"};
        refused(run(concat(base, "--device", "tpu")), "epic expert-worker: --device must be cpu, cuda or cuda:N, got 'tpu'");
        refused(run(concat(base, "--device", "cuda", "--weights", "q4")), "--weights q4 (a converted copy) runs on the CPU only");
        refused(run(concat(base, "--device", "cuda", "--redundant-slots", "2")), "--redundant-slots needs --device cpu");
        refused(run(concat(base, "--device", "cuda:7")), "--device cuda:7: ");
        refused(run(concat(base, "--activations", "bf16")), "--activations bf16 needs --device cuda");
        refused(run(concat(base, "--device", "cuda", "--activations", "fp16")), "--activations must be fp32 or bf16");
    }

    /** A GPU that is not there: on a machine without CUDA (CI) the reason, on a GPU machine the count. */
    @Test
    void aMissingGpuIsNamed() {
        int count = Cuda.deviceCount();
        String missing = "cuda:" + (count + 100);
        String[] base = {"expert-worker", "--model", model(), "--experts", "0-3", "--zk", "127.0.0.1:1"};
        refused(run(concat(base, "--device", missing)), "epic expert-worker: --device " + missing + ": "
                + (Cuda.available() ? "this machine has " + count + " GPU(s)" : Cuda.unavailableReason()));
        refused(run("bench-experts", "--device", missing, "--batch", "1"), "epic bench-experts: "
                + (Cuda.available() ? "cuDeviceGet(" + (count + 100) + ") failed"
                        : "CUDA is not available in this process: " + Cuda.unavailableReason()));
    }

    /** `epic local --expert-device cuda` spreads the workers over the GPUs, or says why it cannot. */
    @Test
    void localPlacesWorkersOnTheGpusThereAre() {
        assertEquals("cpu", LocalCluster.device("cpu", 3));
        int count = Cuda.deviceCount();
        if (count == 0) {
            var e = assertThrows(IllegalArgumentException.class, () -> LocalCluster.device("cuda", 3));
            assertEquals("--expert-device cuda: " + Cuda.unavailableReason(), e.getMessage());
        } else {
            assertEquals("cuda:" + 3 % count, LocalCluster.device("cuda", 3));
        }
    }

    @Test
    void benchAndLocalFlagsAreChecked() {
        refused(run("bench-experts", "--weights", "int4"), "--weights must be bf16 or fp8, got 'int4'");
        refused(run("bench-experts", "--device", "cpu"), "--device must be cuda or cuda:N, got 'cpu'");
        refused(run("local", "--model", model(), "--expert-device", "gpu"), "--expert-device must be cpu or cuda, got 'gpu'");
        refused(run("local", "--model", model(), "--expert-device", "cuda", "--weights", "q8"), "use --weights auto");
        refused(run("local", "--model", model(), "--expert-device", "cuda", "--redundant-slots", "1"),
                "--redundant-slots needs --expert-device cpu");
        refused(run("bench-experts", "--batch", "0"), "--batch sizes must be >= 1");
    }

    private static String[] concat(String[] a, String... b) {
        String[] out = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, out, a.length, b.length);
        return out;
    }
}
