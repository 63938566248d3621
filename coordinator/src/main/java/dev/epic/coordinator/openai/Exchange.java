package dev.epic.coordinator.openai;

import java.io.IOException;
import java.io.OutputStream;
import java.net.URI;

/**
 * One HTTP request and its response, as the API's handlers see it (the shape of the JDK's
 * {@code HttpExchange}, which could not tell when a client left). The handler runs on its own
 * virtual thread and may block; {@link #close} ends the response.
 */
interface Exchange extends AutoCloseable {
    String method();

    URI uri();

    /** The first value of a request header, or null. */
    String requestHeader(String name);

    /** The whole request body (bodies over the server's limit never reach a handler). */
    byte[] body();

    /** Sets a response header, replacing any value it had. */
    void setHeader(String name, String value);

    /** Adds a value to a response header. */
    void addHeader(String name, String value);

    /**
     * Starts the response: {@code length} bytes of body follow, none when -1, or any number, streamed,
     * when 0 (as {@code HttpExchange.sendResponseHeaders}).
     */
    void sendResponseHeaders(int status, long length) throws IOException;

    /** Where the body goes once the headers are sent; a write fails once the client has gone. */
    OutputStream responseBody();

    /** The status sent, or -1 before {@link #sendResponseHeaders}. */
    int responseCode();

    /**
     * Runs {@code action} once when the client closes the connection before the response ends (at
     * once if it already has). How a long non-streaming answer learns that nobody waits for it.
     */
    void onDisconnect(Runnable action);

    /** Ends the response (the last chunk of a streamed one). */
    @Override
    void close() throws IOException;
}
