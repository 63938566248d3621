package dev.epic.cli;

/** Range checks of numeric flags; a refusal is an IllegalArgumentException, which Main prints as one line, exit 2. */
final class Flags {
    private Flags() {}

    static void requireNonNegative(String flag, long value) {
        if (value < 0) {
            throw new IllegalArgumentException(flag + " must be >= 0, got " + value);
        }
    }

    static void requirePositive(String flag, long value) {
        if (value <= 0) {
            throw new IllegalArgumentException(flag + " must be positive, got " + value);
        }
    }
}
