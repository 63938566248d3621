package dev.epic.transport;

/**
 * Version of the internal coordinator-worker protocols (ExpertService and AttentionService, and
 * the ZooKeeper announcements); both ends refuse a different one.
 */
public final class Protocol {
    /**
     * Bump when the semantics of either service's messages change. 2: attention workers. 3: the model
     * fingerprint samples the weights and workers announce their weight format (a worker of an older
     * epic is refused for its version, not taken for another model).
     */
    public static final int VERSION = 3;

    private Protocol() {}
}
