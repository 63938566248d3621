package dev.epic.transport;

/** Version of the coordinator-worker expert protocol; both ends refuse a different one. */
public final class Protocol {
    /** Bump when ExpertRequest/ExpertResponse semantics change. */
    public static final int VERSION = 1;

    private Protocol() {}
}
