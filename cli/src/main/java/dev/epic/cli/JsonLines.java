package dev.epic.cli;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CharsetDecoder;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.MalformedInputException;
import java.nio.charset.StandardCharsets;

/**
 * JSON Lines in, JSON Lines out: each input line is read as strict UTF-8, parsed as one JSON object, handed to a
 * handler, and its answer written as one compact line (Jackson escapes only what JSON requires; non-ASCII stays
 * raw UTF-8). Output is flushed per line so the commands work interactively. Blank lines are skipped. The first
 * bad line stops processing with a {@link BadLine} naming its 1-based line number.
 */
final class JsonLines {
    static final ObjectMapper MAPPER = new ObjectMapper();

    /** Turns one parsed input object into one output object; throws for bad content. */
    interface Handler {
        Object apply(JsonNode line) throws Exception;
    }

    static final class BadLine extends Exception {
        BadLine(long line, String message, Throwable cause) {
            super("line " + line + ": " + message, cause);
        }
    }

    private JsonLines() {}

    /** Returns the number of lines answered. */
    static long process(InputStream in, OutputStream out, Handler handler) throws IOException, BadLine {
        CharsetDecoder utf8 = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT);
        ByteArrayOutputStream line = new ByteArrayOutputStream(4096);
        long lineNo = 0;
        long answered = 0;
        byte[] buf = new byte[1 << 16];
        int n;
        boolean pending = false;
        while ((n = in.read(buf)) > 0) {
            int start = 0;
            for (int i = 0; i < n; i++) {
                if (buf[i] == '\n') {
                    line.write(buf, start, i - start);
                    start = i + 1;
                    answered += answer(++lineNo, line, utf8, out, handler);
                    line.reset();
                    pending = false;
                }
            }
            if (start < n) {
                line.write(buf, start, n - start);
                pending = true;
            }
        }
        if (pending) {
            answered += answer(++lineNo, line, utf8, out, handler);
        }
        return answered;
    }

    private static int answer(long lineNo, ByteArrayOutputStream raw, CharsetDecoder utf8, OutputStream out,
                              Handler handler) throws IOException, BadLine {
        String text;
        try {
            text = utf8.reset().decode(ByteBuffer.wrap(raw.toByteArray())).toString();
        } catch (MalformedInputException e) {
            throw new BadLine(lineNo, "invalid UTF-8 (" + e.getInputLength() + " bad byte(s))", e);
        } catch (CharacterCodingException e) {
            throw new BadLine(lineNo, "invalid UTF-8", e);
        }
        if (text.isBlank()) {
            return 0;
        }
        JsonNode node;
        try {
            node = MAPPER.readTree(text);
        } catch (JsonProcessingException e) {
            throw new BadLine(lineNo, "not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (node == null || !node.isObject()) {
            throw new BadLine(lineNo, "expected a JSON object", null);
        }
        Object result;
        try {
            result = handler.apply(node);
        } catch (RuntimeException e) {
            throw new BadLine(lineNo, e.getMessage(), e);
        } catch (Exception e) {
            throw new BadLine(lineNo, e.toString(), e);
        }
        out.write(MAPPER.writeValueAsBytes(result));
        out.write('\n');
        out.flush();
        return 1;
    }
}
