package dev.epic.coordinator.openai;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.ChannelPipeline;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.MultiThreadIoEventLoopGroup;
import io.netty.channel.nio.NioIoHandler;
import io.netty.channel.socket.SocketChannel;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.DefaultFullHttpResponse;
import io.netty.handler.codec.http.DefaultHttpContent;
import io.netty.handler.codec.http.DefaultHttpHeaders;
import io.netty.handler.codec.http.DefaultHttpResponse;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpHeaderValues;
import io.netty.handler.codec.http.HttpHeaders;
import io.netty.handler.codec.http.HttpMessage;
import io.netty.handler.codec.http.HttpDecoderConfig;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
import io.netty.handler.codec.http.TooLongHttpHeaderException;
import io.netty.handler.codec.http.TooLongHttpLineException;
import io.netty.handler.timeout.IdleStateEvent;
import io.netty.handler.timeout.IdleStateHandler;
import io.netty.handler.timeout.WriteTimeoutHandler;
import io.netty.util.concurrent.DefaultThreadFactory;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The HTTP/1.1 server under the OpenAI API, on Netty (the transport gRPC already brings). Netty keeps
 * reading every connection while its request is handled, so a client that closes it is noticed at
 * once ({@link Exchange#onDisconnect}), as uvicorn tells vLLM. Each request's handler runs on a
 * virtual thread and may block; a connection's requests are handled one after another, in order.
 */
final class NettyHttpServer implements AutoCloseable {
    private static final Logger log = LoggerFactory.getLogger(NettyHttpServer.class);

    /** A keep-alive connection with no request for this long is closed (the JDK server's idle interval). */
    static final int IDLE_SECONDS = 30;
    /**
     * A response write the client has not taken in this long closes the connection, which cancels its
     * request: a client that stopped reading but kept its connection would otherwise hold a batch slot
     * until its answer ended (nginx's send_timeout is the same minute).
     */
    static final int WRITE_TIMEOUT_SECONDS = 60;
    /** Bytes per write of a response body (see the write timeout). */
    static final int WRITE_PIECE = 64 << 10;

    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final Channel server;

    private NettyHttpServer(EventLoopGroup boss, EventLoopGroup workers, Channel server) {
        this.boss = boss;
        this.workers = workers;
        this.server = server;
    }

    /** Bytes the kernel holds of a connection's unsent output (Linux doubles it for its bookkeeping). */
    static final int SEND_BUFFER = 256 << 10;

    /**
     * Binds {@code host:port} (0: any free port) and hands every request whose body is at most
     * {@code maxBody} bytes to {@code handler}, run by {@code executor}; a larger one gets status 413,
     * and one that does not parse 400, 414 or 431, each with the JSON body {@code errorBody} makes of the
     * status and a message. A connection idle between requests for {@code idleSeconds} is closed, and so
     * is one whose client has not taken a write for {@code writeTimeoutSeconds}.
     */
    static NettyHttpServer start(String host, int port, int maxBody, ErrorBody errorBody,
            Consumer<Exchange> handler, ExecutorService executor, int idleSeconds, int writeTimeoutSeconds)
            throws IOException {
        EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, new DefaultThreadFactory("epic-http-accept", true),
                NioIoHandler.newFactory());
        EventLoopGroup workers = new MultiThreadIoEventLoopGroup(2, new DefaultThreadFactory("epic-http", true),
                NioIoHandler.newFactory());
        ServerBootstrap b = new ServerBootstrap().group(boss, workers).channel(NioServerSocketChannel.class)
                .childOption(ChannelOption.TCP_NODELAY, true)
                // A fixed receive buffer: the kernel holds at most this much of a connection's unread bytes
                // (Linux would autotune it up to tcp_rmem's maximum, 32 MiB on this machine), so a client
                // pipelining past the limit below is cut off after little more than it was allowed.
                .childOption(ChannelOption.SO_RCVBUF, 1 << 20)
                // And a fixed send buffer: autotuned up to tcp_wmem's maximum (4 MiB), the kernel would take
                // a stream's events for minutes (a token stream is a few KB/s) from a client that stopped
                // reading before a write could wait and the write timeout start counting.
                .childOption(ChannelOption.SO_SNDBUF, SEND_BUFFER)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        // Header limits as the JDK server had (384 KiB: long JWTs and cookies pass).
                        HttpDecoderConfig limits = new HttpDecoderConfig().setMaxInitialLineLength(64 << 10)
                                .setMaxHeaderSize(384 << 10);
                        Connection connection = new Connection(handler, executor, errorBody, maxBody);
                        // Idle first: the bytes of a slow upload count as activity.
                        ch.pipeline().addLast(new IdleStateHandler(0, 0, idleSeconds, TimeUnit.SECONDS),
                                new WriteTimeoutHandler(writeTimeoutSeconds), new Http2PrefaceRefusal(),
                                new HttpServerCodec(limits), new Aggregator(maxBody, connection), connection);
                    }
                });
        ChannelFuture bound = b.bind(new InetSocketAddress(host, port)).awaitUninterruptibly();
        if (!bound.isSuccess()) {
            boss.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            workers.shutdownGracefully(0, 0, TimeUnit.SECONDS);
            Throwable t = bound.cause();
            throw t instanceof IOException io ? io : new IOException(t.toString(), t);
        }
        return new NettyHttpServer(boss, workers, bound.channel());
    }

    int port() {
        return ((InetSocketAddress) server.localAddress()).getPort();
    }

    /** Takes no new connections; those open go on (answers under way can end). */
    void stopAccepting() {
        server.close().awaitUninterruptibly();
    }

    /** Closes every connection: call once the handlers are done, or their answers are cut. */
    @Override
    public void close() {
        stopAccepting();
        workers.shutdownGracefully(0, 1, TimeUnit.SECONDS).awaitUninterruptibly();
        boss.shutdownGracefully(0, 0, TimeUnit.SECONDS).awaitUninterruptibly();
    }

    /**
     * A request whose body is over the limit, or that did not parse: answered in its turn on the
     * connection (after the answers to the requests before it), with the connection closed after when
     * the client may not send what is left.
     */
    private record Refused(HttpResponseStatus status, String message, boolean close) {}

    /** The JSON body of an answer the server gives itself (the API's own error shape). */
    @FunctionalInterface
    interface ErrorBody {
        byte[] of(int status, String message);
    }

    /**
     * Aggregates each request; one over the limit goes on as a {@link Refused} (413) while the aggregator
     * reads and drops the rest of its body, so a client still sending gets the answer and not a reset.
     */
    private static final class Aggregator extends HttpObjectAggregator {
        private final Connection connection;

        Aggregator(int maxBody, Connection connection) {
            super(maxBody);
            this.connection = connection;
        }

        /**
         * No interim or final answer to "Expect" from here while an earlier request is under way: it
         * would overtake that one's answer. The client then sends its body after its own wait (curl:
         * a second), as HTTP/1.1 allows. No automatic 413 either: handleOversizedMessage answers
         * it in its turn.
         */
        @Override
        protected Object newContinueResponse(HttpMessage start, int maxContentLength, ChannelPipeline pipeline) {
            if (connection.busy() || HttpUtil.is100ContinueExpected(start)
                    && HttpUtil.getContentLength(start, -1L) > maxContentLength) {
                return null;
            }
            return super.newContinueResponse(start, maxContentLength, pipeline);
        }

        @Override
        protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
            // A client expecting 100 Continue may never send the body: close after the answer.
            boolean close = HttpUtil.is100ContinueExpected(oversized) || !HttpUtil.isKeepAlive(oversized);
            ctx.fireChannelRead(new Refused(HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE,
                    "the request body exceeds " + maxContentLength() + " bytes", close));
        }
    }

    /**
     * One connection: its requests in order, one handler at a time, and its disconnect. The connection
     * is read on while a request is handled (that is how a client leaving is seen), so a client
     * pipelining requests could pile them up in memory: those waiting behind the one under way may hold
     * one request body's worth of bytes, and a connection that sends more is closed. (Netty's decoders
     * read on to complete a message even with auto-read off, so pausing reads would not bound it.)
     */
    private static final class Connection extends ChannelInboundHandlerAdapter {
        private final Consumer<Exchange> handler;
        private final ExecutorService executor;
        private final ErrorBody errorBody;
        private final ArrayDeque<Object> pending = new ArrayDeque<>(); // FullHttpRequest or Refused; event loop only
        /** Requests that may wait behind the one under way (their headers take memory too). */
        static final int MAX_WAITING = 16;
        private boolean busy;                                          // event loop only
        private boolean closing;                                       // answered with Connection: close
        private long waitingBytes;                                     // bodies in pending; event loop only
        private final int maxBody;
        private NettyExchange current;                                 // event loop only

        Connection(Consumer<Exchange> handler, ExecutorService executor, ErrorBody errorBody, int maxBody) {
            this.maxBody = maxBody;
            this.handler = handler;
            this.executor = executor;
            this.errorBody = errorBody;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof FullHttpRequest req && req.decoderResult().isFailure()) {
                Throwable why = req.decoderResult().cause();
                req.release();
                HttpResponseStatus status = why instanceof TooLongHttpHeaderException
                        ? HttpResponseStatus.REQUEST_HEADER_FIELDS_TOO_LARGE
                        : why instanceof TooLongHttpLineException ? HttpResponseStatus.REQUEST_URI_TOO_LONG
                        : HttpResponseStatus.BAD_REQUEST;
                msg = new Refused(status, "the request could not be parsed: " + why.getMessage(), true);
            }
            if (msg instanceof FullHttpRequest || msg instanceof Refused) {
                long bytes = msg instanceof FullHttpRequest req ? req.content().readableBytes() : 0;
                if (closing) {
                    io.netty.util.ReferenceCountUtil.release(msg);
                    return;
                }
                if (busy && (waitingBytes + bytes > maxBody || pending.size() >= MAX_WAITING)) {
                    log.debug("HTTP client {} pipelines more than {} bytes of requests: closing",
                            ctx.channel().remoteAddress(), maxBody);
                    io.netty.util.ReferenceCountUtil.release(msg);
                    ctx.close();
                    return;
                }
                waitingBytes += bytes;
                pending.add(msg);
                if (!busy) {
                    next(ctx);
                }
            } else {
                io.netty.util.ReferenceCountUtil.release(msg);
            }
        }

        private void next(ChannelHandlerContext ctx) {
            Object msg = pending.poll();
            if (msg instanceof FullHttpRequest req) {
                waitingBytes -= req.content().readableBytes();
            }
            current = null;
            busy = msg != null;
            if (msg == null) {
                return;
            }
            if (!ctx.channel().isActive()) {
                io.netty.util.ReferenceCountUtil.release(msg);
                busy = false;
                return;
            }
            if (msg instanceof Refused r) {
                refuse(ctx, r);
                return;
            }
            FullHttpRequest req = (FullHttpRequest) msg;
            NettyExchange ex = new NettyExchange(ctx.channel(), req);
            current = ex;
            try {
                executor.execute(() -> {
                    try {
                        handler.accept(ex);
                    } catch (RuntimeException e) {
                        log.warn("HTTP request {} {} failed", ex.method(), req.uri(), e);
                    } finally {
                        ex.finish();
                        try {
                            ctx.executor().execute(() -> next(ctx));
                        } catch (java.util.concurrent.RejectedExecutionException e) {
                            log.debug("HTTP server stopped before the next request on {}", ctx.channel());
                        }
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException e) { // shutting down
                ctx.close();
            }
        }

        /** Answers a request that did not parse or was too large, as an OpenAI error object. */
        private void refuse(ChannelHandlerContext ctx, Refused r) {
            byte[] body = errorBody.of(r.status().code(), r.message());
            DefaultFullHttpResponse resp = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1, r.status(),
                    Unpooled.wrappedBuffer(body));
            resp.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json")
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, body.length);
            if (r.close()) { // nothing after it on this connection
                resp.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
                closing = true;
                busy = true;
                for (Object m; (m = pending.poll()) != null; ) {
                    io.netty.util.ReferenceCountUtil.release(m);
                }
                ctx.writeAndFlush(resp).addListener(ChannelFutureListener.CLOSE);
                return;
            }
            ctx.writeAndFlush(resp).addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
            next(ctx);
        }

        /** Whether a request is under way on this connection (event loop). */
        boolean busy() {
            return busy;
        }

        /** A keep-alive connection idle between requests is closed; one whose request runs long is not. */
        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof IdleStateEvent && !busy) {
                ctx.close();
            } else {
                ctx.fireUserEventTriggered(evt);
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (current != null) {
                current.disconnected();
            }
            for (Object msg; (msg = pending.poll()) != null; ) {
                io.netty.util.ReferenceCountUtil.release(msg);
            }
            ctx.fireChannelInactive();
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.debug("HTTP connection {}: {}", ctx.channel().remoteAddress(), cause.toString());
            ctx.close();
        }
    }

    /** A request and its response over one Netty channel; the handler's thread blocks on each write. */
    private static final class NettyExchange implements Exchange {
        private final Channel channel;
        private final FullHttpRequest request;
        private final HttpVersion version;
        private final byte[] body;
        private boolean keepAlive; // off for a streamed answer to HTTP/1.0, which ends when the connection does
        private final HttpHeaders headers = new DefaultHttpHeaders();
        private final List<Runnable> onDisconnect = new ArrayList<>(); // guarded by this
        private boolean gone;                                          // guarded by this
        private boolean finished;                                      // guarded by this
        private volatile int status = -1;
        private final OutputStream out = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                write(new byte[] {(byte) b}, 0, 1);
            }

            @Override
            public void write(byte[] b, int off, int len) throws IOException {
                if (status == -1) {
                    throw new IOException("response body before its headers");
                }
                // In pieces, each awaited: the write timeout then measures the client's progress, not how
                // long one large body takes (a slow client still reading is not cut off).
                for (int at = off; at < off + len; at += WRITE_PIECE) {
                    send(new DefaultHttpContent(Unpooled.copiedBuffer(b, at, Math.min(WRITE_PIECE, off + len - at))));
                }
            }
        };

        NettyExchange(Channel channel, FullHttpRequest request) {
            this.channel = channel;
            this.request = request;
            this.body = new byte[request.content().readableBytes()];
            request.content().getBytes(request.content().readerIndex(), body);
            this.keepAlive = HttpUtil.isKeepAlive(request);
            this.version = request.protocolVersion();
            request.release(); // the body is copied; the method, URI and headers stay readable
        }

        @Override
        public String method() {
            return request.method().name();
        }

        @Override
        public URI uri() {
            try {
                return new URI(request.uri());
            } catch (java.net.URISyntaxException e) {
                throw new OpenAiError(400, "invalid_request_error", null, "bad request URI: " + e.getMessage());
            }
        }

        @Override
        public String requestHeader(String name) {
            return request.headers().get(name);
        }

        @Override
        public byte[] body() {
            return body;
        }

        @Override
        public void setHeader(String name, String value) {
            headers.set(name, value);
        }

        @Override
        public void addHeader(String name, String value) {
            headers.add(name, value);
        }

        @Override
        public void sendResponseHeaders(int code, long length) throws IOException {
            if (status != -1) {
                throw new IOException("response headers already sent");
            }
            status = code;
            HttpResponse r = new DefaultHttpResponse(version, HttpResponseStatus.valueOf(code), headers);
            if (length > 0) {
                HttpUtil.setContentLength(r, length);
            } else if (length == 0) {
                if (version.equals(HttpVersion.HTTP_1_0)) {
                    keepAlive = false; // HTTP/1.0 has no chunks: the body runs until the connection closes
                } else {
                    HttpUtil.setTransferEncodingChunked(r, true);
                }
            } else if (code != 204 && code != 304) {
                HttpUtil.setContentLength(r, 0);
            }
            HttpUtil.setKeepAlive(r, keepAlive);
            send(r);
        }

        @Override
        public OutputStream responseBody() {
            return out;
        }

        @Override
        public int responseCode() {
            return status;
        }

        @Override
        public void onDisconnect(Runnable action) {
            synchronized (this) {
                if (!gone) {
                    onDisconnect.add(action);
                    return;
                }
            }
            action.run();
        }

        /** On the event loop when the channel closes: the actions run if the response had not ended. */
        void disconnected() {
            List<Runnable> actions;
            synchronized (this) {
                gone = true;
                if (finished) {
                    return;
                }
                actions = List.copyOf(onDisconnect);
                onDisconnect.clear();
            }
            for (Runnable a : actions) {
                try {
                    a.run();
                } catch (RuntimeException e) {
                    log.warn("disconnect action failed", e);
                }
            }
        }

        @Override
        public void close() throws IOException {
            synchronized (this) {
                if (finished) {
                    return;
                }
                finished = true;
            }
            if (status == -1) { // a handler that answered nothing: the client still gets a status
                sendResponseHeaders(500, -1);
            }
            ChannelFuture f = channel.writeAndFlush(LastHttpContent.EMPTY_LAST_CONTENT);
            if (!keepAlive) {
                f.addListener(ChannelFutureListener.CLOSE);
            }
            await(f);
        }

        /** Ends the response however the handler left it (its own close may have failed). */
        void finish() {
            try {
                close();
            } catch (IOException e) {
                log.debug("HTTP client went away: {}", e.toString());
            }
        }

        private void send(Object msg) throws IOException {
            await(channel.writeAndFlush(msg));
        }

        private static void await(ChannelFuture f) throws IOException {
            f.awaitUninterruptibly();
            if (!f.isSuccess()) {
                throw new IOException("the HTTP client went away: " + f.cause(), f.cause());
            }
        }
    }
}
