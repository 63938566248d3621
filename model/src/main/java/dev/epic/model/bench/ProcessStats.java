package dev.epic.model.bench;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** Resident memory and load average from Linux's /proc, for benchmarks and stats (NaN elsewhere). */
public final class ProcessStats {
    private ProcessStats() {}

    /** VmRSS of this process in MiB. */
    public static double residentMb() {
        return residentMb(Path.of("/proc/self/status"));
    }

    /** VmRSS of process {@code pid} on this machine in MiB (NaN if it is not readable). */
    public static double residentMb(long pid) {
        return residentMb(Path.of("/proc", Long.toString(pid), "status"));
    }

    private static double residentMb(Path status) {
        try {
            for (String line : Files.readAllLines(status)) {
                if (line.startsWith("VmRSS:")) {
                    return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
                }
            }
        } catch (IOException | NumberFormatException e) {
            return Double.NaN;
        }
        return Double.NaN;
    }

    /** The machine's 1-minute load average (the machine may be shared). */
    public static double loadAverage() {
        try {
            return Double.parseDouble(Files.readString(Path.of("/proc/loadavg")).split(" ")[0]);
        } catch (IOException | RuntimeException e) {
            return Double.NaN;
        }
    }
}
