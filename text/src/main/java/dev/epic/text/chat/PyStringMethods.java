package dev.epic.text.chat;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import jinjava.javax.el.ELContext;
import jinjava.javax.el.ELResolver;

/**
 * Python {@code str} methods for Jinja templates rendered by Jinjava. Jinjava would call the Java method of the
 * same name, and Java's {@code split} takes a regex and drops trailing empty strings, so
 * {@code 'a</think>'.split('</think>')[-1]} would be {@code "a"} instead of Python's {@code ""}. This resolver
 * answers the Python methods (and negative string indexing) first; everything else falls through.
 */
final class PyStringMethods extends ELResolver {

    @Override
    public Object invoke(ELContext context, Object base, Object method, Class<?>[] paramTypes, Object[] params) {
        if (!(base instanceof String s) || !(method instanceof String name)) {
            return null;
        }
        Object[] a = params == null ? new Object[0] : params;
        Object result;
        switch (name) {
            case "split" -> result = split(s, arg(a, 0), maxSplit(a));
            case "rsplit" -> result = rsplit(s, arg(a, 0), maxSplit(a));
            case "strip" -> result = rstrip(lstrip(s, arg(a, 0)), arg(a, 0));
            case "lstrip" -> result = lstrip(s, arg(a, 0));
            case "rstrip" -> result = rstrip(s, arg(a, 0));
            case "startswith" -> result = anyOf(a, p -> s.startsWith(p));
            case "endswith" -> result = anyOf(a, p -> s.endsWith(p));
            case "lower" -> result = s.toLowerCase(Locale.ROOT);
            case "upper" -> result = s.toUpperCase(Locale.ROOT);
            case "title" -> result = title(s);
            case "capitalize" -> result = s.isEmpty() ? s
                    : s.substring(0, 1).toUpperCase(Locale.ROOT) + s.substring(1).toLowerCase(Locale.ROOT);
            case "replace" -> result = replace(s, a);
            case "find" -> result = s.indexOf(requireString(a, 0, name));
            case "rfind" -> result = s.lastIndexOf(requireString(a, 0, name));
            case "count" -> result = count(s, requireString(a, 0, name));
            case "join" -> result = join(s, a.length > 0 ? a[0] : null);
            case "splitlines" -> result = splitlines(s);
            case "isspace" -> result = !s.isEmpty() && s.codePoints().allMatch(PyStringMethods::isPySpace);
            case "isdigit" -> result = !s.isEmpty() && s.codePoints().allMatch(Character::isDigit);
            case "isalpha" -> result = !s.isEmpty() && s.codePoints().allMatch(Character::isLetter);
            default -> {
                return null;
            }
        }
        context.setPropertyResolved(true);
        return result;
    }

    /** {@code s[i]} with Python's negative indices, counted in code points. */
    @Override
    public Object getValue(ELContext context, Object base, Object property) {
        // Jinjava hands bracket indices over as strings ("-1").
        Long index = property instanceof Number n ? Long.valueOf(n.longValue())
                : property instanceof String p && p.matches("-?\\d{1,9}") ? Long.valueOf(p) : null;
        if (base instanceof String s && index != null) {
            int len = s.codePointCount(0, s.length());
            long i = index;
            if (i < 0) {
                i += len;
            }
            context.setPropertyResolved(true);
            if (i < 0 || i >= len) {
                return null;
            }
            int start = s.offsetByCodePoints(0, (int) i);
            return new String(Character.toChars(s.codePointAt(start)));
        }
        return null;
    }

    @Override
    public Class<?> getType(ELContext context, Object base, Object property) {
        return null;
    }

    @Override
    public void setValue(ELContext context, Object base, Object property, Object value) {}

    @Override
    public boolean isReadOnly(ELContext context, Object base, Object property) {
        return true;
    }

    @Override
    public Iterator<java.beans.FeatureDescriptor> getFeatureDescriptors(ELContext context, Object base) {
        return null;
    }

    @Override
    public Class<?> getCommonPropertyType(ELContext context, Object base) {
        return null;
    }

    // ---- Python semantics ----------------------------------------------------------------------------------

    /** Python's str.isspace() set (Unicode White_Space plus the ASCII separators 0x1C..0x1F). */
    static boolean isPySpace(int c) {
        return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680
                || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F
                || c == 0x3000;
    }

    private static String arg(Object[] a, int i) {
        if (i >= a.length || a[i] == null) {
            return null;
        }
        return a[i].toString();
    }

    private static String requireString(Object[] a, int i, String method) {
        String s = arg(a, i);
        if (s == null) {
            throw new IllegalArgumentException(method + "() needs a string argument");
        }
        return s;
    }

    private static int maxSplit(Object[] a) {
        return a.length > 1 && a[1] instanceof Number n ? n.intValue() : -1;
    }

    static List<String> split(String s, String sep, int maxSplit) {
        List<String> out = new ArrayList<>();
        if (sep == null) {
            int i = 0;
            int n = s.length();
            while (true) {
                while (i < n && isPySpace(s.charAt(i))) {
                    i++;
                }
                if (i >= n) {
                    return out;
                }
                if (maxSplit >= 0 && out.size() == maxSplit) {
                    out.add(rstrip(s.substring(i), null));
                    return out;
                }
                int j = i;
                while (j < n && !isPySpace(s.charAt(j))) {
                    j++;
                }
                out.add(s.substring(i, j));
                i = j;
            }
        }
        if (sep.isEmpty()) {
            throw new IllegalArgumentException("split(): empty separator");
        }
        int start = 0;
        int at;
        while ((maxSplit < 0 || out.size() < maxSplit) && (at = s.indexOf(sep, start)) >= 0) {
            out.add(s.substring(start, at));
            start = at + sep.length();
        }
        out.add(s.substring(start));
        return out;
    }

    static List<String> rsplit(String s, String sep, int maxSplit) {
        if (maxSplit < 0 || sep == null) {
            return sep == null && maxSplit >= 0 ? rsplitWhitespace(s, maxSplit) : split(s, sep, -1);
        }
        if (sep.isEmpty()) {
            throw new IllegalArgumentException("rsplit(): empty separator");
        }
        List<String> out = new ArrayList<>();
        int end = s.length();
        int at;
        while (out.size() < maxSplit && (at = s.lastIndexOf(sep, end - sep.length())) >= 0) {
            out.addFirst(s.substring(at + sep.length(), end));
            end = at;
        }
        out.addFirst(s.substring(0, end));
        return out;
    }

    private static List<String> rsplitWhitespace(String s, int maxSplit) {
        List<String> out = new ArrayList<>();
        int j = s.length();
        while (true) {
            while (j > 0 && isPySpace(s.charAt(j - 1))) {
                j--;
            }
            if (j == 0) {
                return out;
            }
            if (out.size() == maxSplit) {
                out.addFirst(lstrip(s.substring(0, j), null));
                return out;
            }
            int i = j;
            while (i > 0 && !isPySpace(s.charAt(i - 1))) {
                i--;
            }
            out.addFirst(s.substring(i, j));
            j = i;
        }
    }

    static String lstrip(String s, String chars) {
        int i = 0;
        while (i < s.length() && stripped(s.charAt(i), chars)) {
            i++;
        }
        return s.substring(i);
    }

    static String rstrip(String s, String chars) {
        int j = s.length();
        while (j > 0 && stripped(s.charAt(j - 1), chars)) {
            j--;
        }
        return s.substring(0, j);
    }

    /** Python's line boundaries: \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, U+2028, U+2029. */
    static List<String> splitlines(String s) {
        List<String> out = new ArrayList<>();
        int start = 0;
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || (c >= 0x1C && c <= 0x1E) || c == 0x85
                    || c == 0x2028 || c == 0x2029) {
                out.add(s.substring(start, i));
                if (c == '\r' && i + 1 < s.length() && s.charAt(i + 1) == '\n') {
                    i++;
                }
                start = i + 1;
            }
        }
        if (start < s.length()) {
            out.add(s.substring(start));
        }
        return out;
    }

    private static boolean stripped(char c, String chars) {
        return chars == null ? isPySpace(c) : chars.indexOf(c) >= 0;
    }

    private static boolean anyOf(Object[] a, java.util.function.Predicate<String> test) {
        if (a.length == 0 || a[0] == null) {
            throw new IllegalArgumentException("startswith/endswith need a string or a list of strings");
        }
        if (a[0] instanceof Iterable<?> options) {
            for (Object o : options) {
                if (test.test(String.valueOf(o))) {
                    return true;
                }
            }
            return false;
        }
        return test.test(a[0].toString());
    }

    private static String replace(String s, Object[] a) {
        if (a.length < 2) {
            throw new IllegalArgumentException("replace() needs old and new strings");
        }
        String old = String.valueOf(a[0]);
        String rep = String.valueOf(a[1]);
        int count = a.length > 2 && a[2] instanceof Number n ? n.intValue() : -1;
        if (count < 0) {
            return s.replace(old, rep);
        }
        StringBuilder b = new StringBuilder();
        int start = 0;
        int at;
        while (count-- > 0 && (at = s.indexOf(old, start)) >= 0) {
            b.append(s, start, at).append(rep);
            start = at + old.length();
            if (old.isEmpty()) {
                if (start < s.length()) {
                    b.append(s.charAt(start));
                }
                start++;
            }
        }
        if (start <= s.length()) {
            b.append(s, Math.min(start, s.length()), s.length());
        }
        return b.toString();
    }

    private static int count(String s, String sub) {
        if (sub.isEmpty()) {
            return s.codePointCount(0, s.length()) + 1;
        }
        int n = 0;
        for (int at = s.indexOf(sub); at >= 0; at = s.indexOf(sub, at + sub.length())) {
            n++;
        }
        return n;
    }

    private static String join(String sep, Object items) {
        if (!(items instanceof Iterable<?> it)) {
            throw new IllegalArgumentException("join() needs a list of strings");
        }
        StringBuilder b = new StringBuilder();
        boolean first = true;
        for (Object o : it) {
            if (!first) {
                b.append(sep);
            }
            b.append(o);
            first = false;
        }
        return b.toString();
    }

    private static String title(String s) {
        StringBuilder b = new StringBuilder(s.length());
        boolean prevCased = false;
        for (int i = 0; i < s.length(); ) {
            int c = s.codePointAt(i);
            b.appendCodePoint(prevCased ? Character.toLowerCase(c) : Character.toTitleCase(c));
            prevCased = Character.isLetter(c);
            i += Character.charCount(c);
        }
        return b.toString();
    }
}
