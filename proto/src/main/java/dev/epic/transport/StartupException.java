package dev.epic.transport;

/**
 * A process cannot start for a reason outside it (a port taken, an address it does not have,
 * ZooKeeper unreachable): the command line reports it in one line, as it does bad flags.
 */
public final class StartupException extends IllegalStateException {
    public StartupException(String message) {
        super(message);
    }
}
