package dev.epic.text.chat;

import java.lang.reflect.Array;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Python's {@code json.dumps} output format, as transformers' {@code tojson} filter produces it
 * ({@code ensure_ascii=False} by default): {@code ", "} and {@code ": "} separators, or newline + indent with
 * {@code indent}; floats written like Python's repr ({@code 1e+16}, {@code 1.5e-05}, {@code 2.0}).
 */
final class PyJson {
    private PyJson() {}

    static String dumps(Object value, Integer indent, boolean sortKeys, boolean ensureAscii) {
        StringBuilder b = new StringBuilder();
        new Writer(b, indent, sortKeys, ensureAscii).write(value, 0);
        return b.toString();
    }

    private record Writer(StringBuilder b, Integer indent, boolean sortKeys, boolean ensureAscii) {
        void write(Object v, int depth) {
            switch (v) {
                case null -> b.append("null");
                case Boolean bool -> b.append(bool ? "true" : "false");
                case Integer i -> b.append(i);
                case Long l -> b.append(l);
                case Short s -> b.append(s);
                case Byte by -> b.append(by);
                case BigInteger bi -> b.append(bi);
                case Double d -> b.append(pyFloat(d));
                case Float f -> b.append(pyFloat(f.doubleValue()));
                case BigDecimal bd -> b.append(pyFloat(bd.doubleValue()));
                case CharSequence s -> string(s.toString());
                case Character c -> string(c.toString());
                case Map<?, ?> m -> object(m, depth);
                case Iterable<?> it -> array(it, depth);
                default -> {
                    if (v.getClass().isArray()) {
                        List<Object> list = new ArrayList<>();
                        for (int i = 0; i < Array.getLength(v); i++) {
                            list.add(Array.get(v, i));
                        }
                        array(list, depth);
                    } else {
                        throw new IllegalArgumentException(
                                "Object of type " + v.getClass().getSimpleName() + " is not JSON serializable");
                    }
                }
            }
        }

        private void object(Map<?, ?> m, int depth) {
            if (m.isEmpty()) {
                b.append("{}");
                return;
            }
            List<Map.Entry<?, ?>> entries = new ArrayList<>(m.entrySet());
            if (sortKeys) {
                entries.sort((x, y) -> String.valueOf(x.getKey()).compareTo(String.valueOf(y.getKey())));
            }
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : entries) {
                separator(first, depth + 1);
                first = false;
                string(String.valueOf(e.getKey()));
                b.append(": ");
                write(e.getValue(), depth + 1);
            }
            close(depth);
            b.append('}');
        }

        private void array(Iterable<?> it, int depth) {
            if (!it.iterator().hasNext()) {
                b.append("[]");
                return;
            }
            b.append('[');
            boolean first = true;
            for (Object o : it) {
                separator(first, depth + 1);
                first = false;
                write(o, depth + 1);
            }
            close(depth);
            b.append(']');
        }

        private void separator(boolean first, int depth) {
            if (indent == null) {
                if (!first) {
                    b.append(", ");
                }
            } else {
                if (!first) {
                    b.append(',');
                }
                b.append('\n').append(" ".repeat(indent * depth));
            }
        }

        private void close(int depth) {
            if (indent != null) {
                b.append('\n').append(" ".repeat(indent * depth));
            }
        }

        private void string(String s) {
            b.append('"');
            for (int i = 0; i < s.length(); i++) {
                char c = s.charAt(i);
                switch (c) {
                    case '"' -> b.append("\\\"");
                    case '\\' -> b.append("\\\\");
                    case '\n' -> b.append("\\n");
                    case '\r' -> b.append("\\r");
                    case '\t' -> b.append("\\t");
                    case '\b' -> b.append("\\b");
                    case '\f' -> b.append("\\f");
                    default -> {
                        if (c < 0x20 || (ensureAscii && c > 0x7E)) {
                            b.append(String.format("\\u%04x", (int) c));
                        } else {
                            b.append(c);
                        }
                    }
                }
            }
            b.append('"');
        }
    }

    /** Python's float repr: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16. */
    static String pyFloat(double d) {
        if (Double.isNaN(d)) {
            return "NaN";
        }
        if (Double.isInfinite(d)) {
            return d > 0 ? "Infinity" : "-Infinity";
        }
        String sign = (d < 0 || (d == 0 && 1 / d < 0)) ? "-" : "";
        double a = Math.abs(d);
        if (a == 0) {
            return sign + "0.0";
        }
        BigDecimal bd = new BigDecimal(Double.toString(a)).stripTrailingZeros();
        String digits = bd.unscaledValue().toString();
        int exp10 = digits.length() - 1 - bd.scale();
        if (exp10 >= -4 && exp10 < 16) {
            String plain = bd.toPlainString();
            return sign + (plain.indexOf('.') < 0 ? plain + ".0" : plain);
        }
        String mantissa = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
        return sign + mantissa + "e" + (exp10 < 0 ? "-" : "+") + String.format("%02d", Math.abs(exp10));
    }
}
