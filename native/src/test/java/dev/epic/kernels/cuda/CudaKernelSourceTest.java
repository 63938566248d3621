package dev.epic.kernels.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kernels' source compiled where no GPU is, with the CUDA toolkit's {@code nvcc} when the machine
 * has one (skipped otherwise): NVRTC compiles it only on a GPU machine at start-up, so without this a
 * mistake in the source would first show there. Checks that it compiles for Hopper, that every row
 * kernel the host launches is there with the {@code int NAME_rows} the host sizes its grids by, and
 * that no kernel spills registers to local memory.
 */
class CudaKernelSourceTest {
    private static final Pattern ROWS = Pattern.compile("\\.u32 (\\w+)_rows = (\\d+);");
    private static final Pattern SPILLS = Pattern.compile("(\\d+) bytes spill stores");

    @Test
    void compilesForHopperWithEveryRowKernelAndNoSpills(@TempDir Path dir) throws Exception {
        Optional<Path> nvcc = nvcc();
        Assumptions.assumeTrue(nvcc.isPresent(), "no nvcc (the CUDA toolkit's compiler) on this machine");
        Path source = dir.resolve("epic_kernels.cu");
        try (InputStream in = CudaKernels.class.getResourceAsStream(CudaKernels.SOURCE)) {
            Files.write(source, in.readAllBytes());
        }
        Path log = dir.resolve("nvcc.log");
        Process p = new ProcessBuilder(nvcc.get().toString(), "-cubin", "-arch=sm_90", "-std=c++17", "-Xptxas", "-v",
                "--keep", "--keep-dir", dir.toString(), "-o", dir.resolve("k.cubin").toString(), source.toString())
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        assertTrue(p.waitFor(5, TimeUnit.MINUTES), "nvcc did not finish in 5 minutes");
        String output = Files.readString(log);
        assertEquals(0, p.exitValue(), "nvcc failed:\n" + output);

        String ptx = Files.readString(dir.resolve("epic_kernels.ptx"), StandardCharsets.UTF_8);
        Matcher m = ROWS.matcher(ptx);
        Map<String, Integer> rows = new HashMap<>();
        while (m.find()) {
            rows.put(m.group(1), Integer.parseInt(m.group(2)));
        }
        List<String> kernels = CudaKernels.rowKernels();
        for (String name : kernels) {
            assertTrue(ptx.contains(".entry " + name + "("), "no kernel " + name);
            Integer r = rows.get(name);
            assertTrue(r != null && r >= 1 && r <= 8, name + "_rows: " + r);
        }
        assertEquals(kernels.size(), rows.size(), "row counts for kernels the host does not know: " + rows.keySet());

        Matcher s = SPILLS.matcher(output);
        int functions = 0;
        while (s.find()) {
            functions++;
            assertEquals("0", s.group(1), "a kernel spills registers:\n" + output);
        }
        assertTrue(functions >= kernels.size(), "ptxas reported " + functions + " functions:\n" + output);
    }

    /** nvcc on the PATH, else the newest under /usr/local/cuda*. */
    private static Optional<Path> nvcc() throws IOException {
        for (String dir : System.getenv().getOrDefault("PATH", "").split(File.pathSeparator)) {
            Path p = Path.of(dir, "nvcc");
            if (!dir.isEmpty() && Files.isExecutable(p)) {
                return Optional.of(p);
            }
        }
        try (Stream<Path> dirs = Files.list(Path.of("/usr/local"))) {
            return dirs.filter(d -> d.getFileName().toString().startsWith("cuda")).map(d -> d.resolve("bin/nvcc"))
                    .filter(Files::isExecutable).sorted(Comparator.reverseOrder()).findFirst();
        }
    }
}
