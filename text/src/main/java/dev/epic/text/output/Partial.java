package dev.epic.text.output;

import java.util.List;

/** Streaming helper: how much of a buffer's tail could still grow into one of the given strings. */
final class Partial {
    private Partial() {
    }

    /**
     * Length of the longest suffix of {@code text} that is a proper prefix of one of {@code targets}.
     * Text before that suffix can be released; the suffix must be held until more text arrives.
     */
    static int heldSuffix(CharSequence text, List<String> targets) {
        int best = 0;
        int len = text.length();
        for (String t : targets) {
            int max = Math.min(t.length() - 1, len);
            for (int k = max; k > best; k--) {
                if (regionEquals(text, len - k, t, k)) {
                    best = k;
                    break;
                }
            }
        }
        return best;
    }

    private static boolean regionEquals(CharSequence text, int from, String prefixOf, int k) {
        for (int i = 0; i < k; i++) {
            if (text.charAt(from + i) != prefixOf.charAt(i)) {
                return false;
            }
        }
        return true;
    }

    /** Earliest occurrence of any target at or after {@code from}: {index, targetIndex}, or null. */
    static int[] earliest(String text, int from, List<String> targets) {
        int bestAt = -1;
        int which = -1;
        for (int i = 0; i < targets.size(); i++) {
            int at = text.indexOf(targets.get(i), from);
            if (at >= 0 && (bestAt < 0 || at < bestAt)) {
                bestAt = at;
                which = i;
            }
        }
        return bestAt < 0 ? null : new int[] {bestAt, which};
    }
}
