package dev.epic.cli;

/** Range checks of numeric flags; a refusal is an IllegalArgumentException, which Main prints as one line, exit 2. */
final class Flags {
    private Flags() {}

    static void requireNonNegative(String flag, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(flag + " must be >= 0, got " + value);
        }
    }

    static void requirePort(String flag, int port) {
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException(flag + " must be in [0, 65535], got " + port);
        }
    }

    static void requirePositive(String flag, long value) {
        if (value <= 0) {
            throw new IllegalArgumentException(flag + " must be positive, got " + value);
        }
    }

    /** {@code mb} MiB in bytes, refused below {@code min} or beyond a long. */
    static long mebibytes(String flag, long mb, long min) {
        if (mb < min) {
            throw new IllegalArgumentException(flag + " must be >= " + min + ", got " + mb);
        }
        try {
            return Math.multiplyExact(mb, 1L << 20);
        } catch (ArithmeticException e) {
            throw new IllegalArgumentException(flag + " is too large: " + mb);
        }
    }
}
