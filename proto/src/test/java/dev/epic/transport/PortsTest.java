package dev.epic.transport;

import static org.junit.jupiter.api.Assertions.assertEquals;

import org.junit.jupiter.api.Test;

class PortsTest {
    /** Announced addresses are dialled as gRPC targets: an IPv6 literal needs its brackets. */
    @Test
    void hostPortBracketsIpv6Literals() {
        assertEquals("10.1.2.3:50061", Ports.hostPort("10.1.2.3", 50061));
        assertEquals("[fd00::2]:50061", Ports.hostPort("fd00::2", 50061));
        assertEquals("worker-0.expert-worker:50061", Ports.hostPort("worker-0.expert-worker", 50061));
    }
}
