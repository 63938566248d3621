package dev.epic.transport;

import java.io.IOException;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.ServerSocket;

/** A worker's listening ports: taken ones are one clear error, not a bind stack trace. */
public final class Ports {
    private Ports() {}

    /**
     * Fails with "port N on HOST is in use" when {@code port} (&gt; 0) cannot be bound on {@code host}
     * now. Workers call it before loading their weights, which may take minutes, so a port clash is
     * reported at once (the real bind comes later; losing a race then is reported the same way).
     */
    public static void checkFree(String host, int port) throws IOException {
        if (port <= 0) {
            return;
        }
        InetSocketAddress address = new InetSocketAddress(host, port);
        if (address.isUnresolved()) {
            throw new StartupException("cannot listen on " + host + ":" + port + ": " + host + " does not resolve to an address");
        }
        try (ServerSocket probe = new ServerSocket()) {
            probe.bind(address);
        } catch (BindException e) {
            // "Address already in use", or an address this machine does not have ("Cannot assign requested address").
            String why = String.valueOf(e.getMessage());
            throw why.contains("in use") ? inUse(host, port)
                    : new StartupException("cannot listen on " + host + ":" + port + ": " + why
                            + " (is " + host + " an address of this machine?)");
        }
    }

    /**
     * host:port as gRPC targets and URLs write it: an IPv6 literal in brackets ({@code [fd00::1]:50061}),
     * so that an address announced in ZooKeeper on an IPv6-only network can be dialled.
     */
    public static String hostPort(String host, int port) {
        return com.google.common.net.HostAndPort.fromParts(host, port).toString();
    }

    /** The error for a port that is taken. */
    public static StartupException inUse(String host, int port) {
        return new StartupException("port " + port + " on " + host + " is in use");
    }

    /** Whether {@code e} (or a cause) is a failure to bind an address. */
    static boolean isBindFailure(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof BindException) {
                return true;
            }
        }
        return false;
    }
}
