package dev.epic.coordinator.openai;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.util.List;
import java.util.Locale;

/**
 * Who may call the HTTP API and how: CORS (allowed origins, preflights), the API key (vLLM's
 * --api-key), and the method and Content-Type a request must have. No model or API logic.
 */
final class HttpAccess {
    /** Bearer token every request but the open paths must carry; null: none. */
    private final byte[] apiKey;
    /** Origins browsers may call from (CORS); "*" among them: any. Empty: no CORS headers. */
    private final List<String> allowedOrigins;

    HttpAccess(String apiKey, List<String> allowedOrigins) {
        // Stripped: a key file (kubectl create secret --from-file) usually ends in a newline.
        this.apiKey = apiKey == null ? null : apiKey.strip().getBytes(StandardCharsets.UTF_8);
        this.allowedOrigins = List.copyOf(allowedOrigins);
    }

    /** What Access-Control-Allow-Origin answers a request with: "*", its Origin, or null (none or not allowed). */
    String allowedOrigin(Exchange ex) {
        String origin = ex.requestHeader("Origin");
        if (origin == null) {
            return null;
        }
        return allowedOrigins.contains("*") ? "*" : allowedOrigins.contains(origin) ? origin : null;
    }

    /**
     * A CORS preflight, answered before the API key check: browsers send it without credentials, so a
     * 401 (or a 405) here would block every cross-origin call. As vLLM's CORS middleware, on any path.
     */
    static void preflight(Exchange ex, String origin) throws IOException {
        ex.setHeader("Allow", "GET, POST, OPTIONS");
        if (origin != null) {
            ex.setHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
            String asked = ex.requestHeader("Access-Control-Request-Headers");
            ex.setHeader("Access-Control-Allow-Headers", "Authorization, Content-Type"
                    + (asked == null || asked.isBlank() ? "" : ", " + asked.strip()));
            ex.setHeader("Access-Control-Max-Age", "600");
        }
        ex.sendResponseHeaders(204, -1);
    }

    /** Whether the request may go on: no key is set, or it carries the key (compared in constant time). */
    boolean admits(Exchange ex) {
        if (apiKey == null) {
            return true;
        }
        String header = ex.requestHeader("Authorization");
        if (header == null || !header.regionMatches(true, 0, "Bearer ", 0, 7)) {
            return false;
        }
        byte[] given = header.substring(7).strip().getBytes(StandardCharsets.UTF_8);
        return MessageDigest.isEqual(apiKey, given);
    }

    /**
     * A body is JSON: a Content-Type, when sent, must say so (application/json or application/*+json), as
     * FastAPI (vLLM) parses only those. Else a form or text/plain POST, which browsers send cross-site
     * without a CORS preflight, would be served as JSON.
     */
    static void requireJson(Exchange ex) {
        String type = ex.requestHeader("Content-Type");
        if (type == null) {
            return; // none: parsed as JSON, as FastAPI does
        }
        String media = type.split(";", 2)[0].strip().toLowerCase(Locale.ROOT);
        if (!media.equals("application/json") && !(media.startsWith("application/") && media.endsWith("+json"))) {
            throw new OpenAiError(400, "invalid_request_error", null, "the body must be JSON (Content-Type: "
                    + "application/json), got Content-Type '" + type + "'");
        }
    }

    static void requireMethod(Exchange ex, String method) {
        if (!ex.method().equals(method)) {
            ex.setHeader("Allow", method);
            throw new OpenAiError(405, "invalid_request_error", null,
                    ex.uri().getPath() + " takes " + method + ", not " + ex.method());
        }
    }
}
