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
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpResponse;
import io.netty.handler.codec.http.HttpResponseStatus;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http.HttpVersion;
import io.netty.handler.codec.http.LastHttpContent;
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
import java.util.function.Supplier;
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

    private final EventLoopGroup boss;
    private final EventLoopGroup workers;
    private final Channel server;

    private NettyHttpServer(EventLoopGroup boss, EventLoopGroup workers, Channel server) {
        this.boss = boss;
        this.workers = workers;
        this.server = server;
    }

    /**
     * Binds {@code host:port} (0: any free port) and hands every request whose body is at most
     * {@code maxBody} bytes to {@code handler}, run by {@code executor}; a larger one gets status 413
     * with the body {@code tooLarge} gives.
     */
    static NettyHttpServer start(String host, int port, int maxBody, Supplier<byte[]> tooLarge,
            Consumer<Exchange> handler, ExecutorService executor) throws IOException {
        EventLoopGroup boss = new MultiThreadIoEventLoopGroup(1, new DefaultThreadFactory("epic-http-accept", true),
                NioIoHandler.newFactory());
        EventLoopGroup workers = new MultiThreadIoEventLoopGroup(2, new DefaultThreadFactory("epic-http", true),
                NioIoHandler.newFactory());
        ServerBootstrap b = new ServerBootstrap().group(boss, workers).channel(NioServerSocketChannel.class)
                .childOption(ChannelOption.TCP_NODELAY, true)
                .childHandler(new ChannelInitializer<SocketChannel>() {
                    @Override
                    protected void initChannel(SocketChannel ch) {
                        ch.pipeline().addLast(new HttpServerCodec(), new Aggregator(maxBody, tooLarge),
                                new Connection(handler, executor));
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

    /** Stops accepting; answers under way get a second to end (as {@code HttpServer.stop(1)}). */
    @Override
    public void close() {
        server.close().awaitUninterruptibly();
        workers.shutdownGracefully(1, 1, TimeUnit.SECONDS).awaitUninterruptibly();
        boss.shutdownGracefully(0, 0, TimeUnit.SECONDS).awaitUninterruptibly();
    }

    /** A body over the limit gets the API's own 413 (an OpenAI error object), not Netty's empty one. */
    private static final class Aggregator extends HttpObjectAggregator {
        private final Supplier<byte[]> tooLarge;

        Aggregator(int maxBody, Supplier<byte[]> tooLarge) {
            super(maxBody);
            this.tooLarge = tooLarge;
        }

        @Override
        protected void handleOversizedMessage(ChannelHandlerContext ctx, HttpMessage oversized) {
            DefaultFullHttpResponse r = new DefaultFullHttpResponse(HttpVersion.HTTP_1_1,
                    HttpResponseStatus.REQUEST_ENTITY_TOO_LARGE, Unpooled.wrappedBuffer(tooLarge.get()));
            r.headers().set(HttpHeaderNames.CONTENT_TYPE, "application/json")
                    .setInt(HttpHeaderNames.CONTENT_LENGTH, r.content().readableBytes());
            // The connection stays open and the aggregator reads and drops the rest of the body, so a
            // client still sending gets this answer and not a reset (closing with unread bytes resets).
            if (HttpUtil.isKeepAlive(oversized)) {
                ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE_ON_FAILURE);
            } else {
                r.headers().set(HttpHeaderNames.CONNECTION, HttpHeaderValues.CLOSE);
                ctx.writeAndFlush(r).addListener(ChannelFutureListener.CLOSE);
            }
        }
    }

    /** One connection: its requests in order, one handler at a time, and its disconnect. */
    private static final class Connection extends ChannelInboundHandlerAdapter {
        private final Consumer<Exchange> handler;
        private final ExecutorService executor;
        private final ArrayDeque<FullHttpRequest> pending = new ArrayDeque<>(); // event loop only
        private NettyExchange current;                                          // event loop only

        Connection(Consumer<Exchange> handler, ExecutorService executor) {
            this.handler = handler;
            this.executor = executor;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof FullHttpRequest req) {
                pending.add(req);
                if (current == null) {
                    next(ctx);
                }
            } else {
                io.netty.util.ReferenceCountUtil.release(msg);
            }
        }

        private void next(ChannelHandlerContext ctx) {
            FullHttpRequest req = pending.poll();
            current = null;
            if (req == null || !ctx.channel().isActive()) {
                if (req != null) {
                    req.release();
                }
                return;
            }
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
                        req.release();
                        ctx.executor().execute(() -> next(ctx));
                    }
                });
            } catch (java.util.concurrent.RejectedExecutionException e) { // shutting down
                req.release();
                ctx.close();
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            if (current != null) {
                current.disconnected();
            }
            for (FullHttpRequest req; (req = pending.poll()) != null; ) {
                req.release();
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
        private final byte[] body;
        private final boolean keepAlive;
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
                send(new DefaultHttpContent(Unpooled.copiedBuffer(b, off, len)));
            }
        };

        NettyExchange(Channel channel, FullHttpRequest request) {
            this.channel = channel;
            this.request = request;
            this.body = new byte[request.content().readableBytes()];
            request.content().getBytes(request.content().readerIndex(), body);
            this.keepAlive = HttpUtil.isKeepAlive(request);
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
            HttpResponse r = new DefaultHttpResponse(HttpVersion.HTTP_1_1, HttpResponseStatus.valueOf(code), headers);
            if (length > 0) {
                HttpUtil.setContentLength(r, length);
            } else if (length == 0) {
                HttpUtil.setTransferEncodingChunked(r, true);
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
