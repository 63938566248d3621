package dev.epic.text.output;

import java.util.List;

/**
 * Finds stop strings in streamed text, also when one spans several tokens. Text that could be the start
 * of a stop string is held back; once a stop string completes (the first to complete wins), the text before it is released and the
 * stop string and everything after it are dropped.
 */
public final class StopMatcher {
    private final List<String> stops;
    private final StringBuilder held = new StringBuilder();
    private String matched;

    public StopMatcher(List<String> stops) {
        for (String s : stops) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stop strings must not be empty");
            }
        }
        this.stops = List.copyOf(stops);
    }

    /** Adds text; returns the part that is certainly not (part of) a stop string. */
    public String push(String text) {
        if (matched != null || stops.isEmpty()) {
            return matched != null ? "" : text;
        }
        held.append(text);
        String buf = held.toString();
        // The stop that completes first wins, as if the text had arrived one char at a time, so the result
        // does not depend on how text is split into deltas.
        int bestEnd = Integer.MAX_VALUE;
        int bestStart = -1;
        for (String s : stops) {
            int at = buf.indexOf(s);
            if (at >= 0 && (at + s.length() < bestEnd || at + s.length() == bestEnd && at < bestStart)) {
                bestEnd = at + s.length();
                bestStart = at;
                matched = s;
            }
        }
        if (matched != null) {
            held.setLength(0);
            return buf.substring(0, bestStart);
        }
        int keep = Partial.heldSuffix(buf, stops);
        held.delete(0, buf.length() - keep);
        return buf.substring(0, buf.length() - keep);
    }

    /** End of stream without a stop: releases the held text. */
    public String flush() {
        String rest = held.toString();
        held.setLength(0);
        return rest;
    }

    public boolean stopped() {
        return matched != null;
    }

    /** The stop string that ended the stream, or null. */
    public String matched() {
        return matched;
    }
}
