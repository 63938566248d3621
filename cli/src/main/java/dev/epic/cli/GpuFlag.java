package dev.epic.cli;

/** The GPU a {@code --device cuda[:N]} flag names. */
final class GpuFlag {
    private GpuFlag() {}

    /** N of "cuda:N" (0 for "cuda"); anything else is refused naming {@code option} and {@code expected}. */
    static int ordinal(String option, String value, String expected) {
        if (!value.matches("cuda(:\\d{1,9})?")) {
            throw new IllegalArgumentException(option + " must be " + expected + ", got '" + value + "'");
        }
        return value.contains(":") ? Integer.parseInt(value.substring(value.indexOf(':') + 1)) : 0;
    }
}
