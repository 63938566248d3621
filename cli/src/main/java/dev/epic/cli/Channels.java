package dev.epic.cli;

import io.grpc.ManagedChannel;
import io.grpc.netty.NettyChannelBuilder;

/** Client channels to a coordinator. */
final class Channels {
    private Channels() {}

    /** Plaintext channel to host:port; logits responses can be tens of MB. */
    static ManagedChannel open(String target) {
        if (target == null || !target.matches(".+:\\d+")) {
            throw new IllegalArgumentException("--target must be HOST:PORT, got '" + target + "'");
        }
        return NettyChannelBuilder.forTarget(target).usePlaintext().maxInboundMessageSize(Integer.MAX_VALUE).build();
    }
}
