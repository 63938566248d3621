package dev.epic.transport;

import java.util.BitSet;

/** Parses and prints expert sets such as {@code 0-63,200-207}. */
public final class ExpertRanges {
    private ExpertRanges() {}

    /** Sorted distinct expert ids of a spec like "0-63,200-207,9"; each id must be in [0, limit). */
    public static int[] parse(String spec, int limit) {
        if (spec == null || spec.isBlank()) {
            throw new IllegalArgumentException("empty expert set (expected e.g. 0-63,200-207)");
        }
        BitSet set = new BitSet();
        for (String part : spec.split(",")) {
            String p = part.strip();
            int dash = p.indexOf('-');
            int lo;
            int hi;
            try {
                lo = Integer.parseInt(dash < 0 ? p : p.substring(0, dash).strip());
                hi = dash < 0 ? lo : Integer.parseInt(p.substring(dash + 1).strip());
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("bad expert range '" + p + "' in '" + spec + "' (expected N or N-M)");
            }
            if (lo < 0 || hi < lo || hi >= limit) {
                throw new IllegalArgumentException("expert range '" + p + "' outside [0, " + limit + ") or reversed");
            }
            set.set(lo, hi + 1);
        }
        return set.stream().toArray();
    }

    /** Compact text of sorted ids: [0,1,2,5] -> "0-2,5". */
    public static String format(int[] sortedIds) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < sortedIds.length; ) {
            int j = i;
            while (j + 1 < sortedIds.length && sortedIds[j + 1] == sortedIds[j] + 1) {
                j++;
            }
            if (!sb.isEmpty()) {
                sb.append(',');
            }
            sb.append(sortedIds[i]);
            if (j > i) {
                sb.append('-').append(sortedIds[j]);
            }
            i = j + 1;
        }
        return sb.toString();
    }
}
