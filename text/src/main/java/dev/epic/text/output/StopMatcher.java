package dev.epic.text.output;

import java.util.List;

/**
 * Finds stop strings in streamed text, also when one spans several tokens. Text that could be the start
 * of a stop string is held back; once a stop string appears, the text before it is released and the
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
        int[] hit = Partial.earliest(buf, 0, stops);
        if (hit != null) {
            matched = stops.get(hit[1]);
            held.setLength(0);
            return buf.substring(0, hit[0]);
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
