package dev.epic.coordinator.openai;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.handler.codec.ByteToMessageDecoder;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A client speaking HTTP/2 from its first byte (a gRPC client pointed at the HTTP port, or curl
 * --http2-prior-knowledge) opens with the HTTP/2 connection preface, which the HTTP/1.1 codec would
 * answer with an HTTP/1.1 error such a client cannot read. This answers it in HTTP/2 instead: an empty
 * SETTINGS frame (the server's preface), then GOAWAY with HTTP_1_1_REQUIRED and a message saying where to
 * go, and closes. Any other first bytes go on to the HTTP/1.1 codec, and this handler leaves.
 */
final class Http2PrefaceRefusal extends ByteToMessageDecoder {
    private static final byte[] PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    private static final int SETTINGS = 0x4;
    private static final int GOAWAY = 0x7;
    private static final int HTTP_1_1_REQUIRED = 0xd;
    static final String MESSAGE = "this port serves the OpenAI-compatible API over HTTP/1.1 only; "
            + "gRPC clients connect to the coordinator's gRPC port (--port, 50051 by default)";

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        int n = Math.min(in.readableBytes(), PREFACE.length);
        for (int i = 0; i < n; i++) {
            if (in.getByte(in.readerIndex() + i) != PREFACE[i]) {
                ctx.pipeline().remove(this); // HTTP/1.x: what was read goes on to the codec
                return;
            }
        }
        if (n < PREFACE.length) {
            return; // so far the preface: wait for the rest
        }
        in.skipBytes(in.readableBytes());
        byte[] debug = MESSAGE.getBytes(StandardCharsets.UTF_8);
        ByteBuf frames = ctx.alloc().buffer(9 + 9 + 8 + debug.length);
        frames.writeMedium(0).writeByte(SETTINGS).writeByte(0).writeInt(0); // length, type, flags, stream 0
        frames.writeMedium(8 + debug.length).writeByte(GOAWAY).writeByte(0).writeInt(0)
                .writeInt(0).writeInt(HTTP_1_1_REQUIRED).writeBytes(debug); // last stream 0: nothing was processed
        ctx.writeAndFlush(frames).addListener(ChannelFutureListener.CLOSE);
    }
}
