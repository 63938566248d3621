package dev.epic.text.constrain;

import java.math.BigDecimal;
import java.math.RoundingMode;

/**
 * {@code minimum}, {@code maximum}, {@code exclusiveMinimum} and {@code exclusiveMaximum} for a number
 * being written digit by digit. Values are counted in units of 10^-{@link #FRACTION_DIGITS} (1 for
 * integers), so a bounded number is written without an exponent and with at most that many fraction
 * digits; the bounds become inclusive in those units. A prefix may continue while some number it can
 * still become lies within the bounds.
 */
final class NumberBounds {
    /** Fraction digits a bounded number may have. */
    static final int FRACTION_DIGITS = 6;
    /** Bounds past this magnitude are refused: in units they must fit a long with room for a digit. */
    private static final BigDecimal LARGEST = BigDecimal.valueOf(1_000_000_000_000L);
    private static final long[] POW10 = new long[19];

    static {
        POW10[0] = 1;
        for (int i = 1; i < POW10.length; i++) {
            POW10[i] = POW10[i - 1] * 10;
        }
    }

    /** Fraction digits allowed: FRACTION_DIGITS for numbers, 0 for integers. */
    final int scale;
    /** One whole in units. */
    final long unit;
    /** Inclusive bounds in units; Long.MIN_VALUE / Long.MAX_VALUE: none (and stand for minus / plus infinity). */
    final long lo, hi;

    NumberBounds(boolean integer, BigDecimal min, boolean minExclusive, BigDecimal max, boolean maxExclusive, String where) {
        scale = integer ? 0 : FRACTION_DIGITS;
        unit = POW10[scale];
        lo = min == null ? Long.MIN_VALUE : units(min, minExclusive, RoundingMode.CEILING, where);
        hi = max == null ? Long.MAX_VALUE : units(max, maxExclusive, RoundingMode.FLOOR, where);
        if (lo > hi) {
            throw new IllegalArgumentException(where + ": minimum/maximum allow no " + (integer ? "integer" : "number")
                    + (integer ? "" : " of up to " + FRACTION_DIGITS + " decimals"));
        }
    }

    /** The bound in units, moved inwards onto the unit grid (and one unit in when exclusive and on it). */
    private long units(BigDecimal bound, boolean exclusive, RoundingMode inwards, String where) {
        if (bound.abs().compareTo(LARGEST) > 0) {
            throw new IllegalArgumentException(where + ": bounds beyond " + LARGEST.toPlainString() + " in magnitude are not supported");
        }
        BigDecimal scaled = bound.movePointRight(scale);
        long u = scaled.setScale(0, inwards).longValueExact();
        boolean onGrid = scaled.compareTo(BigDecimal.valueOf(u)) == 0;
        return exclusive && onGrid ? (inwards == RoundingMode.CEILING ? u + 1 : u - 1) : u;
    }

    // The prefix states, as the cursor knows them.
    static final int START = 0, MINUS = 1, ZERO = 2, INT = 3, DOT = 4, FRACTION = 5;

    /**
     * Whether a number with this prefix can still end within the bounds: {@code state} is one of the
     * constants above, {@code whole} the integer part's digits, {@code digits} and {@code fraction} the
     * fraction digits written and their value.
     */
    boolean reachable(int state, boolean negative, long whole, int digits, long fraction) {
        return switch (state) {
            case START -> true; // the constructor refused empty bounds
            case MINUS -> lo <= 0;
            case ZERO -> meets(negative, 0, unit - 1);
            case INT -> {
                // whole, then m more digits and any fraction: [whole * 10^m, (whole + 1) * 10^m) in wholes.
                for (int m = 0; m < POW10.length; m++) {
                    long a = times(times(whole, POW10[m]), unit);
                    long b = times(times(whole + 1, POW10[m]), unit);
                    if (meets(negative, a, b == Long.MAX_VALUE ? b : b - 1)) {
                        yield true;
                    }
                    if (a == Long.MAX_VALUE || (negative ? -a < lo : a > hi)) {
                        yield false; // past the bound on this side: more digits only go further
                    }
                }
                yield false;
            }
            case DOT -> meets(negative, times(whole, unit), times(whole, unit) + unit - 1);
            default -> {
                long step = POW10[scale - digits];
                long v = times(whole, unit) + fraction * step;
                yield meets(negative, v, v + step - 1);
            }
        };
    }

    /** Whether the written number (a complete prefix) lies within the bounds. */
    boolean contains(boolean negative, long whole, int digits, long fraction) {
        long v = times(whole, unit) + (digits == 0 ? 0 : fraction * POW10[scale - digits]);
        return meets(negative, v, v);
    }

    /** Whether every number the prefix can become lies within the bounds: no need to follow it further. */
    boolean settled(int state, boolean negative, long whole) {
        // Only the unbounded direction matters: an integer part only grows in magnitude.
        return state == INT && (negative ? lo == Long.MIN_VALUE && -times(whole, unit) <= hi
                : hi == Long.MAX_VALUE && times(whole, unit) >= lo);
    }

    /** Magnitudes [a, b] with the sign given, against [lo, hi]; Long.MAX_VALUE stands for infinity. */
    private boolean meets(boolean negative, long a, long b) {
        long from = negative ? -b : a, to = negative ? -a : b;
        return from <= hi && to >= lo;
    }

    /** a * b for non-negative values, saturating at Long.MAX_VALUE (infinity). */
    private static long times(long a, long b) {
        long r = a * b;
        return a != 0 && (r / a != b || r < 0) ? Long.MAX_VALUE : r;
    }
}
