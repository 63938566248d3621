package dev.epic.transport;

import dev.epic.proto.ModelFingerprint;
import io.grpc.Status;

/**
 * The model a worker serves, as its messages name it: what every worker service checks first on a
 * message (same protocol, same model, same hidden size) and what it announces.
 *
 * @param name    the checkpoint's name
 * @param sha256  its fingerprint
 * @param hidden  the model's hidden size
 */
public record ModelIdentity(String name, String sha256, int hidden) {
    public ModelFingerprint proto() {
        return ModelFingerprint.newBuilder().setName(name).setSha256(sha256).build();
    }

    /**
     * Refuses a message from a coordinator of another protocol version or model (FAILED_PRECONDITION)
     * or with another hidden size (INVALID_ARGUMENT); {@code role} and {@code workerId} name this
     * worker in a refusal (joined only then: this runs on every message).
     */
    public void check(String role, String workerId, int protocolVersion, String fingerprint, int messageHidden) {
        if (protocolVersion != Protocol.VERSION) {
            throw new MessageStream.Refusal(Status.FAILED_PRECONDITION.withDescription("protocol version "
                    + protocolVersion + " is not supported by " + role + " " + workerId + " (speaks " + Protocol.VERSION + ")"));
        }
        if (!fingerprint.equals(sha256)) {
            throw new MessageStream.Refusal(Status.FAILED_PRECONDITION.withDescription("model fingerprint mismatch: "
                    + "coordinator serves " + abbrev(fingerprint) + " but " + role + " " + workerId + " holds " + name + " "
                    + abbrev(sha256)));
        }
        if (messageHidden != hidden) {
            throw new MessageStream.Refusal(Status.INVALID_ARGUMENT.withDescription("hidden size " + messageHidden
                    + " but the model has " + hidden));
        }
    }

    /** A fingerprint's first 12 hex digits, for messages ("(none)" when empty). */
    public static String abbrev(String sha) {
        return sha.length() > 12 ? sha.substring(0, 12) : sha.isEmpty() ? "(none)" : sha;
    }
}
