package dev.epic.coordinator.openai;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.grpc.ManagedChannel;
import io.grpc.StatusRuntimeException;
import io.grpc.health.v1.HealthCheckRequest;
import io.grpc.health.v1.HealthGrpc;
import io.grpc.netty.NettyChannelBuilder;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.charset.StandardCharsets;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.Consumer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** The HTTP server under the OpenAI API, over raw sockets: framing, limits and order on one connection. */
class NettyHttpServerTest {
    private final ExecutorService executor = Executors.newVirtualThreadPerTaskExecutor();
    private NettyHttpServer server;

    @AfterEach
    void stop() {
        if (server != null) {
            server.close();
        }
        executor.shutdownNow();
    }

    private Socket start(int maxBody, int idleSeconds, Consumer<Exchange> handler) throws IOException {
        return start(maxBody, idleSeconds, NettyHttpServer.WRITE_TIMEOUT_SECONDS, handler);
    }

    private Socket start(int maxBody, int idleSeconds, int writeTimeoutSeconds, Consumer<Exchange> handler)
            throws IOException {
        server = NettyHttpServer.start("127.0.0.1", 0, maxBody, (status, message) -> ascii("{\"error\": \"too large\"}"), handler,
                executor, idleSeconds, writeTimeoutSeconds);
        Socket s = new Socket("127.0.0.1", server.port());
        s.setSoTimeout(10_000);
        return s;
    }

    private static byte[] ascii(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** Answers 200 with a JSON body naming the request. */
    private static void answer(Exchange ex) {
        try {
            byte[] b = ascii("{\"seen\": \"" + ex.method() + " " + ex.uri().getPath() + "\"}");
            ex.setHeader("Content-Type", "application/json");
            ex.sendResponseHeaders(200, b.length);
            ex.responseBody().write(b);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    /** Everything the server sends until it closes the connection. */
    private static String readToClose(Socket s) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        InputStream in = s.getInputStream();
        byte[] buf = new byte[1 << 16];
        for (int n; (n = in.read(buf)) > 0; ) {
            out.write(buf, 0, n);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    /** What the server sends within {@code millis}, without waiting for it to close. */
    private static String readFor(Socket s, int millis) throws IOException {
        s.setSoTimeout(millis);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[1 << 16];
        try {
            for (int n; (n = s.getInputStream().read(buf)) > 0; ) {
                out.write(buf, 0, n);
            }
        } catch (SocketTimeoutException e) {
            // enough
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Test
    void aBodyOverTheLimitIs413InItsTurnAndTheConnectionGoesOn() throws Exception {
        CountDownLatch slow = new CountDownLatch(1);
        try (Socket s = start(1000, 30, ex -> {
            if (ex.uri().getPath().equals("/slow")) {
                try {
                    slow.await(5, TimeUnit.SECONDS);
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            answer(ex);
        })) {
            OutputStream o = s.getOutputStream();
            o.write(ascii("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n"
                    + "POST /v1/completions HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\n\r\n" + "y".repeat(5000)
                    + "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
            o.flush();
            Thread.sleep(300); // the 413 is known by now: it must still wait for /slow's answer
            slow.countDown();
            String all = readToClose(s);
            int first = all.indexOf("GET /slow"), tooLarge = all.indexOf("413"), last = all.indexOf("GET /health");
            assertTrue(first >= 0 && tooLarge > first && last > tooLarge, all);
            assertTrue(all.contains("{\"error\": \"too large\"}"), all);
        }
    }

    @Test
    void anOversizedBodyExpecting100ContinueGetsTheJson413AndTheConnectionCloses() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        try (Socket s = start(1000, 30, ex -> {
            calls.incrementAndGet();
            answer(ex);
        })) {
            s.getOutputStream().write(ascii("POST /v1/completions HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n"
                    + "Content-Length: 5000\r\n\r\n"));
            String all = readToClose(s);
            assertTrue(all.startsWith("HTTP/1.1 413"), all);
            assertTrue(all.contains("{\"error\": \"too large\"}"), all);
            assertFalse(all.contains("100 Continue"), all);
            assertEquals(0, calls.get());
        }
    }

    /** Headers up to 384 KiB pass (as with the JDK's server); longer ones are 431, never a handler's call. */
    @Test
    void longHeadersPassAndTooLongOnesAre431() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        try (Socket s = start(1000, 30, ex -> {
            calls.incrementAndGet();
            assertEquals(10_000 + 7, ex.requestHeader("Authorization").length());
            answer(ex);
        })) {
            s.getOutputStream().write(ascii("GET /health HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer " + "k".repeat(10_000)
                    + "\r\n\r\nGET /health HTTP/1.1\r\nHost: a\r\nX-Big: " + "x".repeat(400 << 10) + "\r\n\r\n"));
            String all = readToClose(s);
            assertTrue(all.startsWith("HTTP/1.1 200"), all);
            assertTrue(all.contains("HTTP/1.1 431"), all);
            assertEquals(1, calls.get());
        }
    }

    /** HTTP/1.0 has no chunked encoding: a streamed answer is the raw body, ended by closing. */
    @Test
    void aStreamedAnswerToHttp10IsNotChunked() throws Exception {
        try (Socket s = start(1000, 30, ex -> {
            try {
                ex.sendResponseHeaders(200, 0);
                ex.responseBody().write(ascii("data: one\n\n"));
                ex.responseBody().write(ascii("data: two\n\n"));
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        })) {
            s.getOutputStream().write(ascii("POST /v1/completions HTTP/1.0\r\nContent-Length: 0\r\n\r\n"));
            String all = readToClose(s);
            assertFalse(all.toLowerCase().contains("transfer-encoding"), all);
            assertTrue(all.endsWith("\r\n\r\ndata: one\n\ndata: two\n\n"), all);
        }
    }

    /**
     * A client pipelining big requests may have one wait behind the one under way; one more closes the
     * connection, so what a connection holds in memory stays bounded.
     */
    @Test
    void pipelinedRequestsAreNotReadAheadOfTheOneUnderWay() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (Socket s = start(4 << 20, 30, ex -> {
            try {
                release.await(20, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            answer(ex);
        })) {
            byte[] body = new byte[(4 << 20) - 1000];
            java.util.Arrays.fill(body, (byte) 'a');
            byte[] head = ascii("POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Length: " + body.length + "\r\n\r\n");
            AtomicLong sent = new AtomicLong();
            Thread writer = Thread.ofVirtual().start(() -> {
                try {
                    OutputStream o = s.getOutputStream();
                    for (int i = 0; i < 25; i++) {
                        o.write(head);
                        o.write(body);
                        sent.addAndGet(body.length);
                    }
                } catch (IOException e) {
                    // closed at the end of the test
                }
            });
            writer.join(5000);
            // Three requests read, then the connection closes: far from the 100 MiB the client tries to send.
            assertTrue(sent.get() < 24L << 20, "the server read ahead " + (sent.get() >> 20) + " MiB");
            release.countDown();
            assertEquals("", readToClose(s), "no answer on a connection closed for pipelining too much");
        }
    }

    /** A request whose bytes arrive slowly is not idle: it is answered, however long it takes to arrive. */
    @Test
    void aSlowUploadIsNotClosedAsIdle() throws Exception {
        try (Socket s = start(1000, 1, NettyHttpServerTest::answer)) {
            byte[] req = ascii("POST /slow HTTP/1.1\r\nHost: a\r\nContent-Length: 19\r\nConnection: close\r\n\r\n"
                    + "{\"a\": \"0123456789\"}");
            for (int i = 0; i < req.length; i += 4) { // about 2.5 s in all, never a second without bytes
                s.getOutputStream().write(req, i, Math.min(4, req.length - i));
                s.getOutputStream().flush();
                Thread.sleep(100);
            }
            String all = readToClose(s);
            assertTrue(all.contains("POST /slow"), all);
        }
    }

    /**
     * "Expect: 100-continue" on a request pipelined behind a streaming answer: no interim answer cuts
     * into the stream, and both are answered, in order.
     */
    @Test
    void anExpectBehindAStreamWaitsItsTurn() throws Exception {
        try (Socket s = start(1000, 30, ex -> {
            try {
                if (ex.uri().getPath().equals("/stream")) {
                    ex.sendResponseHeaders(200, 0);
                    for (int i = 0; i < 5; i++) {
                        ex.responseBody().write(ascii("data: " + i + "\n\n"));
                        Thread.sleep(100);
                    }
                } else {
                    answer(ex);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        })) {
            OutputStream o = s.getOutputStream();
            o.write(ascii("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"));
            o.flush();
            Thread.sleep(150);
            o.write(ascii("POST /after HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n"
                    + "Connection: close\r\n\r\n{}"));
            o.flush();
            String all = readToClose(s);
            assertTrue(all.startsWith("HTTP/1.1 200"), all);
            assertTrue(all.contains("data: 4\n\n"), all);
            assertTrue(all.indexOf("POST /after") > all.indexOf("data: 4"), all);
            assertFalse(all.substring(0, all.indexOf("data: 4")).contains("100 Continue"), all);
        }
    }

    /** Many small requests pipelined behind one under way: past 16 waiting, the connection closes. */
    @Test
    void tooManyPipelinedRequestsCloseTheConnection() throws Exception {
        CountDownLatch release = new CountDownLatch(1);
        try (Socket s = start(1000, 30, ex -> {
            try {
                release.await(10, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            answer(ex);
        })) {
            s.getOutputStream().write(ascii("GET /health HTTP/1.1\r\nHost: a\r\n\r\n".repeat(40)));
            s.getOutputStream().flush();
            Thread.sleep(500);
            release.countDown();
            assertEquals("", readToClose(s), "answers on a connection closed for pipelining too much");
        }
    }

    /**
     * A client that stops reading a stream but keeps its connection: once the kernel's bounded buffers
     * are full and a write has waited for the write timeout, the connection closes and the handler's blocked write fails (the OpenAI server
     * cancels the generation on that failure), instead of blocking until the answer ends.
     */
    @Test
    void aClientThatStopsReadingIsDisconnectedAfterTheWriteTimeout() throws Exception {
        CountDownLatch writeFailed = new CountDownLatch(1);
        AtomicLong written = new AtomicLong();
        try (Socket s = start(1000, 30, 1, ex -> {
            try {
                ex.setHeader("Content-Type", "text/event-stream");
                ex.sendResponseHeaders(200, 0);
                byte[] chunk = new byte[1 << 16];
                java.util.Arrays.fill(chunk, (byte) 'x');
                while (true) { // an endless stream
                    ex.responseBody().write(chunk);
                    written.addAndGet(chunk.length);
                }
            } catch (IOException e) {
                writeFailed.countDown();
            }
        })) {
            s.getOutputStream().write(ascii("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n"));
            // nothing is read until the server has given up
            assertTrue(writeFailed.await(20, TimeUnit.SECONDS), "the stalled client's write never failed");
            assertTrue(written.get() > 0, "some of the stream went out first");
            // The kernel took at most its fixed send buffer (doubled by Linux) and the client's receive
            // buffer: 512 KiB here, against 4 MiB when tcp_wmem autotuned it (minutes of a token stream).
            assertTrue(written.get() <= 4L * NettyHttpServer.SEND_BUFFER, written.get() + " bytes went out first");
            String got;
            try {
                got = readToClose(s); // what the buffers held, then the end: the server closed the connection
            } catch (java.net.SocketException reset) {
                got = "reset"; // closed with unread data: also the end
            }
            assertTrue(got.equals("reset") || got.startsWith("HTTP/1.1 200"), got.substring(0, Math.min(40, got.length())));
        }
    }

    /**
     * The write timeout measures progress, not a whole body: a client that reads a 20 MB answer at
     * about 3 MB/s (128 KB every 40 ms through a fixed 128 KB receive buffer, 6.5 s in all) gets all of
     * it although the timeout is 3 s (a 64 KiB piece waits at most about 1.3 s, for the kernel to see
     * a third of its send buffer free), while the one write of the whole body would wait about 6 s (the
     * kernel's buffers take well under 1 MB ahead).
     */
    @Test
    void aSlowClientStillReadingALargeBodyIsNotCutOff() throws Exception {
        int size = 20 << 20;
        start(1000, 30, 3, ex -> {
            try {
                byte[] body = new byte[size];
                java.util.Arrays.fill(body, (byte) 'y');
                ex.sendResponseHeaders(200, body.length);
                ex.responseBody().write(body); // one write of the whole body, as a JSON answer is sent
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }).close();
        try (Socket s = new Socket()) {
            s.setReceiveBufferSize(128 << 10); // fixed: no autotuning to take the whole body at once
            s.connect(new java.net.InetSocketAddress("127.0.0.1", server.port()));
            s.setSoTimeout(10_000);
            s.getOutputStream().write(ascii("GET /big HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"));
            InputStream in = s.getInputStream();
            byte[] buf = new byte[128 << 10];
            long got = 0;
            for (int n; (n = in.read(buf)) > 0; ) {
                got += n;
                Thread.sleep(40);
            }
            assertTrue(got > size, "got " + got + " bytes of " + size + " and the headers");
        }
    }

    @Test
    void aConnectionIdleBetweenRequestsIsClosedButNotOneWhoseRequestRunsLong() throws Exception {
        try (Socket s = start(1000, 1, ex -> {
            try {
                Thread.sleep(2500); // longer than the idle time, with nothing read or written
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            answer(ex);
        })) {
            s.getOutputStream().write(ascii("GET /long HTTP/1.1\r\nHost: a\r\n\r\n"));
            String answer = readFor(s, 4000); // the answer, then the close a second after it
            assertTrue(answer.contains("GET /long"), answer);
            assertEquals(-1, s.getInputStream().read(), "an idle connection stays open");
        }
    }

    /**
     * A client speaking HTTP/2 from the start gets an HTTP/2 answer it can read: the server's SETTINGS,
     * then GOAWAY with HTTP_1_1_REQUIRED naming the gRPC port, and the close; a gRPC client says so.
     * HTTP/1.1 requests, including ones sent a byte at a time, are served as before.
     */
    @Test
    void anHttp2ClientIsToldInHttp2WhereToGo() throws Exception {
        try (Socket s = start(1000, 30, NettyHttpServerTest::answer)) {
            s.getOutputStream().write(ascii("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
            s.getOutputStream().write(new byte[] {0, 0, 0, 4, 0, 0, 0, 0, 0}); // the client's empty SETTINGS
            DataInputStream in = new DataInputStream(s.getInputStream());
            byte[] settings = new byte[9];
            in.readFully(settings);
            assertEquals(4, settings[3], "a SETTINGS frame first");
            int length = (in.readUnsignedByte() << 16) | in.readUnsignedShort();
            assertEquals(7, in.readUnsignedByte(), "then GOAWAY");
            in.readUnsignedByte();
            assertEquals(0, in.readInt(), "on the connection");
            assertEquals(0, in.readInt(), "last stream: none processed");
            assertEquals(0xd, in.readInt(), "HTTP_1_1_REQUIRED");
            byte[] debug = new byte[length - 8];
            in.readFully(debug);
            assertEquals(Http2PrefaceRefusal.MESSAGE, new String(debug, StandardCharsets.UTF_8));
            assertEquals(-1, in.read(), "closed");
        }
        try (Socket s = new Socket("127.0.0.1", server.port())) { // "P", "R"... then not the preface
            s.setSoTimeout(10_000);
            for (byte b : ascii("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")) {
                s.getOutputStream().write(b);
                s.getOutputStream().flush();
            }
            assertTrue(readToClose(s).contains("POST /x"));
        }
        ManagedChannel grpc = NettyChannelBuilder.forAddress("127.0.0.1", server.port())
                .usePlaintext().build();
        try {
            StatusRuntimeException e = assertThrows(StatusRuntimeException.class, () -> HealthGrpc.newBlockingStub(grpc)
                    .withDeadlineAfter(10, TimeUnit.SECONDS).check(HealthCheckRequest.getDefaultInstance()));
            // grpc-java retries a stream the GOAWAY left unsent a few times, then reports the GOAWAY.
            assertTrue(e.getStatus().getDescription().contains("HTTP_1_1_REQUIRED")
                    && e.getStatus().getDescription().contains("gRPC port"), e.toString());
        } finally {
            grpc.shutdownNow();
        }
    }
}
