package dev.epic.text.constrain;

import java.util.Map;

/**
 * The {@code format}s a constrained string is held to, each as an anchored pattern that accepts only
 * valid values (no leap seconds: validators disagree on them). Others, such as {@code email} or
 * {@code hostname} whose validity rests on lists of domains, are annotations, as JSON Schema 2020-12 makes every format
 * by default: accepted and not enforced.
 */
final class StringFormats {
    private StringFormats() {}

    private static final String DAY_OF_MONTH = "((0[13578]|1[02])-(0[1-9]|[12]\\d|3[01])|(0[469]|11)-(0[1-9]|[12]\\d|30)"
            + "|02-(0[1-9]|1\\d|2[0-8]))";
    /** Every year with every valid day, February 29 only in leap years (divisible by 4, centuries by 400). */
    private static final String DATE = "(\\d{4}-" + DAY_OF_MONTH + "|(\\d\\d(0[48]|[2468][048]|[13579][26])"
            + "|([02468][048]|[13579][26])00)-02-29)";
    /** RFC 3339 allows offsets to 23:59; Java's validators stop at 18:00, so the answer does too. */
    private static final String TIME = "([01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(\\.\\d{1,9})?(Z|[+-](0\\d|1[0-7]):[0-5]\\d|[+-]18:00)";
    private static final String OCTET = "(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)";
    private static final String HEX = "[0-9a-fA-F]";

    private static final Map<String, String> PATTERNS = Map.of(
            "date", "^" + DATE + "$",
            "time", "^" + TIME + "$",
            "date-time", "^" + DATE + "T" + TIME + "$",
            "uuid", "^" + HEX + "{8}-" + HEX + "{4}-" + HEX + "{4}-" + HEX + "{4}-" + HEX + "{12}$",
            "ipv4", "^" + OCTET + "(\\." + OCTET + "){3}$");

    /** The pattern that enforces {@code format}, or null where the format is an annotation only. */
    static String pattern(String format) {
        return PATTERNS.get(format);
    }
}
