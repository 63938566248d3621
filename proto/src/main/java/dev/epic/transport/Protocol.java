package dev.epic.transport;

/**
 * Version of the internal coordinator-worker protocols (ExpertService and AttentionService, and
 * the ZooKeeper announcements); both ends refuse a different one.
 */
public final class Protocol {
    /** Bump when the semantics of either service's messages change. 2: attention workers. */
    public static final int VERSION = 2;

    private Protocol() {}
}
