package dev.epic.text.constrain;

import dev.epic.text.Vocabulary;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * The whole output held to a context-free grammar: vLLM's {@code guided_grammar}, in the GBNF notation
 * that llama.cpp and xgrammar (vLLM's default backend) read:
 *
 * <pre>
 * root   ::= answer ("," ws answer)*   # the text must match root as a whole
 * answer ::= "yes" | "no" | [0-9]+ | [^,\n]{1,8}
 * ws     ::= [ \t]?
 * </pre>
 *
 * Rules are {@code name ::= alternatives}; an element is a string literal, a character class ({@code
 * [a-z]}, {@code [^"]}), {@code .} (any character), a rule's name or a parenthesised group, each
 * optionally followed by {@code *}, {@code +}, {@code ?} or {@code {m}}, {@code {m,}}, {@code {m,n}};
 * {@code #} starts a comment. A rule may span lines. Left recursion is refused, as llama.cpp refuses it.
 *
 * <p>Compiled, a grammar is a list of rules, each a list of alternatives, each a sequence of items: a
 * set of characters or another rule. All alternatives are laid out in one array of {@link #code}, each
 * item's slot followed by the next and an alternative ended by {@link #END}; {@link GrammarCursor} walks
 * it with a set of stacks of slots. Compiled grammars, and their token masks, are shared by the requests
 * that send the same text.
 */
public final class Grammar implements TextLanguage {
    /** Ends an alternative in {@link #code}. */
    static final int END = Integer.MIN_VALUE;
    /** Items a grammar may compile to (counted repetitions copy theirs). */
    static final int MAX_ITEMS = 100_000;
    private static final int MAX_COUNT = 1_000;

    /**
     * code[slot]: an item's character set (its index in {@link #sets}, >= 0), a rule (-1 - its index), or
     * {@link #END}.
     */
    final int[] code;
    /** Character sets as sorted, disjoint inclusive ranges [lo0, hi0, lo1, hi1, ...] of code points. */
    final int[][] sets;
    /** Per rule, the slots its alternatives start at. */
    final int[][] alternatives;
    final int root;
    private final Map<Vocabulary, TokenMask<GrammarCursor>> masks = Collections.synchronizedMap(new WeakHashMap<>());
    /** States met so far, one object per value (at most {@link #MAX_STATES}; then new ones stay apart). */
    private final Map<GrammarCursor.State, GrammarCursor.State> states = new java.util.concurrent.ConcurrentHashMap<>();
    static final int MAX_STATES = 4096; // each with its ASCII transitions (128 at most)
    /** Non-ASCII transitions the states remember together (about 16 MB); later ones are computed each time. */
    static final int MAX_REMEMBERED = 250_000;
    private final java.util.concurrent.atomic.AtomicInteger remembered = new java.util.concurrent.atomic.AtomicInteger();

    private static final Map<String, Grammar> COMPILED = Collections.synchronizedMap(
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, Grammar> e) {
                    return size() > 16;
                }
            });

    private Grammar(int[] code, int[][] sets, int[][] alternatives, int root) {
        this.code = code;
        this.sets = sets;
        this.alternatives = alternatives;
        this.root = root;
    }

    /**
     * Compiles {@code text}, whose rule {@code root} the whole output must match.
     *
     * @throws IllegalArgumentException naming what is wrong and where (line:column)
     */
    public static Grammar compile(String text) {
        Grammar known = COMPILED.get(text);
        if (known != null) {
            return known;
        }
        Grammar g = new Compiler(text).compile();
        Grammar raced = COMPILED.putIfAbsent(text, g);
        return raced != null ? raced : g;
    }

    @Override
    public TokenConstraint constrain(Vocabulary vocab) {
        return AnswerConstraint.of(vocab, mask(vocab), start());
    }

    TokenMask<GrammarCursor> mask(Vocabulary vocab) {
        return masks.computeIfAbsent(vocab, v -> new TokenMask<>(v, 512));
    }

    /** A cursor at the start of the text. */
    public GrammarCursor start() {
        return new GrammarCursor(this);
    }

    /** The state equal to {@code s} met before, or s, kept from now on while there is room. */
    GrammarCursor.State intern(GrammarCursor.State s) {
        GrammarCursor.State known = states.get(s);
        if (known != null) {
            return known;
        }
        if (states.size() >= MAX_STATES) {
            return s;
        }
        known = states.putIfAbsent(s, s);
        return known != null ? known : s;
    }

    /** Whether one more non-ASCII transition may be remembered (counts it if so). */
    boolean remember() {
        return remembered.get() < MAX_REMEMBERED && remembered.incrementAndGet() <= MAX_REMEMBERED;
    }

    /** Whether character set {@code set} holds a code point in [lo, hi]. */
    boolean intersects(int set, int lo, int hi) {
        int[] r = sets[set];
        for (int i = 0; i < r.length && r[i] <= hi; i += 2) {
            if (r[i + 1] >= lo) {
                return true;
            }
        }
        return false;
    }

    boolean contains(int set, int cp) {
        return intersects(set, cp, cp);
    }

    /** One element as parsed: a character set or a rule. */
    private record Item(int set, int rule) {
        static Item chars(int set) {
            return new Item(set, -1);
        }

        static Item ref(int rule) {
            return new Item(-1, rule);
        }
    }

    /** Reads GBNF into rules of alternatives of items, then checks and lays them out. */
    private static final class Compiler {
        private final String src;
        private int at;
        private final Map<String, Integer> ruleIds = new LinkedHashMap<>();
        private final List<String> names = new ArrayList<>();
        /** Per rule, its alternatives; null until defined. */
        private final List<List<List<Item>>> rules = new ArrayList<>();
        /** Where each rule was first used, for the message when it is never defined. */
        private final Map<Integer, Integer> usedAt = new HashMap<>();
        private final List<int[]> sets = new ArrayList<>();
        private final Map<List<Integer>, Integer> setIds = new HashMap<>();
        private int items;

        Compiler(String src) {
            this.src = src;
        }

        Grammar compile() {
            skipSpace();
            if (at == src.length()) {
                throw new IllegalArgumentException("the grammar is empty");
            }
            while (at < src.length()) {
                int start = at;
                String name = name();
                skipSpace();
                if (name.isEmpty() || !src.startsWith("::=", at)) {
                    at = start;
                    throw error(src.startsWith(":", at + name.length()) || src.startsWith("?", start)
                            ? "expected 'name ::= ...' (GBNF, as llama.cpp and xgrammar read; Lark's 'name: ...' is not supported)"
                            : "expected 'name ::= ...'");
                }
                at += 3;
                int rule = rule(name, start);
                if (rules.get(rule) != null) {
                    at = start;
                    throw error("rule '" + name + "' is defined twice");
                }
                rules.set(rule, alternatives(name, false));
            }
            for (int r = 0; r < rules.size(); r++) {
                if (rules.get(r) == null) {
                    at = usedAt.get(r);
                    throw error("rule '" + names.get(r) + "' is used but not defined");
                }
            }
            Integer root = ruleIds.get("root");
            if (root == null) {
                throw new IllegalArgumentException("the grammar has no 'root' rule: the output must match root");
            }
            return layOut(root);
        }

        private int rule(String name, int usedHere) {
            Integer id = ruleIds.get(name);
            if (id == null) {
                id = rules.size();
                ruleIds.put(name, id);
                names.add(name);
                rules.add(null);
                usedAt.put(id, usedHere);
            }
            return id;
        }

        /** A rule the compiler makes (a group, a repetition), named after the rule it is in. */
        private int helper(String in, List<List<Item>> alternatives) {
            if ((items += alternatives == null ? 2 : alternatives.stream().mapToInt(List::size).sum() + 1) > MAX_ITEMS) {
                throw new IllegalArgumentException("the grammar is too large: more than " + MAX_ITEMS + " items");
            }
            int id = rules.size();
            String name = in + "#" + id;
            ruleIds.put(name, id);
            names.add(name);
            rules.add(alternatives);
            return id;
        }

        /** Alternatives up to the next rule's start (top level) or the closing parenthesis (nested). */
        private List<List<Item>> alternatives(String in, boolean nested) {
            List<List<Item>> alts = new ArrayList<>();
            alts.add(sequence(in, nested));
            while (at < src.length() && src.charAt(at) == '|') {
                at++;
                alts.add(sequence(in, nested));
            }
            return alts;
        }

        private List<Item> sequence(String in, boolean nested) {
            List<Item> seq = new ArrayList<>();
            while (true) {
                skipSpace();
                if (at == src.length()) {
                    if (nested) {
                        throw error("a '(' is not closed");
                    }
                    return seq;
                }
                char c = src.charAt(at);
                if (c == '|' || c == ')') {
                    if (c == ')' && !nested) {
                        throw error("a ')' without its '('");
                    }
                    return seq;
                }
                if (!nested && startsRule()) {
                    return seq;
                }
                int before = seq.size();
                if (c == '"') {
                    at++;
                    while (true) {
                        if (at == src.length()) {
                            throw error("a string is not closed");
                        }
                        if (src.charAt(at) == '"') {
                            at++;
                            break;
                        }
                        int cp = character(true);
                        seq.add(Item.chars(set(new int[] {cp, cp})));
                    }
                } else if (c == '[') {
                    seq.add(Item.chars(charClass()));
                } else if (c == '.') {
                    at++;
                    seq.add(Item.chars(set(new int[] {0, Character.MAX_CODE_POINT})));
                } else if (c == '(') {
                    at++;
                    List<List<Item>> group = alternatives(in, true);
                    at++; // the ')'
                    seq.add(Item.ref(helper(in, group)));
                } else if (isNameChar(c)) {
                    int start = at;
                    seq.add(Item.ref(rule(name(), start)));
                } else {
                    throw error("unexpected '" + new String(Character.toChars(src.codePointAt(at))) + "'");
                }
                repetition(in, seq, before);
                if ((items += seq.size() - before) > MAX_ITEMS) {
                    throw new IllegalArgumentException("the grammar is too large: more than " + MAX_ITEMS + " items");
                }
            }
        }

        /** A name followed by '::=' starts the next rule (rules end there, whatever the lines). */
        private boolean startsRule() {
            int save = at;
            String name = name();
            skipSpace();
            boolean starts = !name.isEmpty() && src.startsWith("::=", at);
            at = save;
            return starts;
        }

        /** Applies a repetition operator after the element that seq holds from {@code from} on, if there is one. */
        private void repetition(String in, List<Item> seq, int from) {
            skipSpace();
            if (at == src.length()) {
                return;
            }
            char op = src.charAt(at);
            int min;
            int max; // -1: unbounded
            switch (op) {
                case '*' -> { min = 0; max = -1; at++; }
                case '+' -> { min = 1; max = -1; at++; }
                case '?' -> { min = 0; max = 1; at++; }
                case '{' -> {
                    int open = at++;
                    skipSpace();
                    min = number(0);
                    skipSpace();
                    if (at < src.length() && src.charAt(at) == ',') {
                        at++;
                        skipSpace();
                        max = at < src.length() && Character.isDigit(src.charAt(at)) ? number(0) : -1;
                    } else {
                        max = min;
                    }
                    skipSpace();
                    if (at == src.length() || src.charAt(at) != '}') {
                        at = open;
                        throw error("a repetition is '{m}', '{m,}' or '{m,n}'");
                    }
                    at++;
                    if (max >= 0 && max < min) {
                        at = open;
                        throw error("a repetition of at most " + max + " and at least " + min);
                    }
                    if (min > MAX_COUNT || max > MAX_COUNT) {
                        at = open;
                        throw error("repetitions above " + MAX_COUNT + " are not supported");
                    }
                }
                default -> {
                    return;
                }
            }
            List<Item> element = new ArrayList<>(seq.subList(from, seq.size()));
            seq.subList(from, seq.size()).clear();
            Item one = element.size() == 1 ? element.getFirst() : Item.ref(helper(in, List.of(element)));
            for (int i = 0; i < min; i++) {
                seq.add(one);
            }
            if (max < 0) { // star ::= one star | (empty): right recursion, which the cursor runs as a loop
                int star = helper(in, null);
                rules.set(star, List.of(List.of(one, Item.ref(star)), List.of()));
                seq.add(Item.ref(star));
            } else if (max > min) { // opt_k ::= one opt_(k-1) | (empty)
                int opt = helper(in, List.of(List.of(one), List.of()));
                for (int k = 1; k < max - min; k++) {
                    opt = helper(in, List.of(List.of(one, Item.ref(opt)), List.of()));
                }
                seq.add(Item.ref(opt));
            }
        }

        private int number(int orElse) {
            int start = at;
            while (at < src.length() && Character.isDigit(src.charAt(at)) && at - start < 7) {
                at++;
            }
            return at == start ? orElse : Integer.parseInt(src.substring(start, at));
        }

        /** [...] or [^...]: ranges of characters, escapes as in strings. */
        private int charClass() {
            int open = at++;
            boolean negated = at < src.length() && src.charAt(at) == '^';
            if (negated) {
                at++;
            }
            List<int[]> ranges = new ArrayList<>();
            while (true) {
                if (at == src.length()) {
                    at = open;
                    throw error("a '[' is not closed");
                }
                if (src.charAt(at) == ']') {
                    at++;
                    break;
                }
                int lo = character(false);
                int hi = lo;
                if (at + 1 < src.length() && src.charAt(at) == '-' && src.charAt(at + 1) != ']') {
                    at++;
                    hi = character(false);
                    if (hi < lo) {
                        at = open;
                        throw error("a character range from U+" + Integer.toHexString(lo) + " down to U+"
                                + Integer.toHexString(hi));
                    }
                }
                ranges.add(new int[] {lo, hi});
            }
            int[] merged = merge(ranges);
            if (negated) {
                merged = complement(merged);
            }
            if (merged.length == 0) {
                at = open;
                throw error("a character class that matches no character");
            }
            return set(merged);
        }

        /** One character of a string or class, with llama.cpp's escapes. */
        private int character(boolean inString) {
            int cp = src.codePointAt(at);
            at += Character.charCount(cp);
            if (cp != '\\') {
                return cp;
            }
            if (at == src.length()) {
                throw error("a '\\' at the end");
            }
            char e = src.charAt(at++);
            return switch (e) {
                case 'n' -> '\n';
                case 'r' -> '\r';
                case 't' -> '\t';
                case '\\', '"', '[', ']', '-', '^', '\'' -> e;
                case 'x' -> hex(2);
                case 'u' -> hex(4);
                case 'U' -> hex(8);
                default -> {
                    at -= 2;
                    throw error("unknown escape '\\" + e + "'" + (inString ? " in a string" : " in a character class"));
                }
            };
        }

        private int hex(int digits) {
            int start = at;
            if (at + digits > src.length()) {
                throw error("an escape needs " + digits + " hex digits");
            }
            int cp;
            try {
                cp = Integer.parseUnsignedInt(src.substring(at, at + digits), 16);
            } catch (NumberFormatException e) {
                throw error("an escape needs " + digits + " hex digits");
            }
            at += digits;
            if (cp > Character.MAX_CODE_POINT || (cp >= 0xd800 && cp <= 0xdfff)) {
                at = start;
                throw error("U+" + Integer.toHexString(cp) + " is not a character");
            }
            return cp;
        }

        private String name() {
            int start = at;
            while (at < src.length() && isNameChar(src.charAt(at))) {
                at++;
            }
            return src.substring(start, at);
        }

        private static boolean isNameChar(char c) {
            return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_';
        }

        /** Spaces, newlines and comments. */
        private void skipSpace() {
            while (at < src.length()) {
                char c = src.charAt(at);
                if (c == '#') {
                    while (at < src.length() && src.charAt(at) != '\n') {
                        at++;
                    }
                } else if (Character.isWhitespace(c)) {
                    at++;
                } else {
                    return;
                }
            }
        }

        private int set(int[] ranges) {
            List<Integer> key = Arrays.stream(ranges).boxed().toList();
            return setIds.computeIfAbsent(key, k -> {
                sets.add(ranges);
                return sets.size() - 1;
            });
        }

        private IllegalArgumentException error(String what) {
            int line = 1;
            int col = 1;
            for (int i = 0; i < Math.min(at, src.length()); i++) {
                if (src.charAt(i) == '\n') {
                    line++;
                    col = 1;
                } else {
                    col++;
                }
            }
            return new IllegalArgumentException(what + " (at " + line + ":" + col + ")");
        }

        /**
         * Checks the rules and lays them out: alternatives that can never end (they use a rule that
         * matches no finite text) are dropped, the root must match some text, and no rule may reach
         * itself before a character (left recursion: the cursor would expand it for ever).
         */
        private Grammar layOut(int root) {
            int n = rules.size();
            boolean[] finite = new boolean[n];
            for (boolean changed = true; changed; ) {
                changed = false;
                for (int r = 0; r < n; r++) {
                    if (!finite[r] && rules.get(r).stream().anyMatch(alt -> alt.stream().allMatch(i -> i.rule < 0 || finite[i.rule]))) {
                        finite[r] = changed = true;
                    }
                }
            }
            if (!finite[root]) {
                throw new IllegalArgumentException("rule 'root' matches no text: every alternative recurses without end");
            }
            List<List<List<Item>>> kept = new ArrayList<>(n);
            for (int r = 0; r < n; r++) {
                kept.add(rules.get(r).stream().filter(alt -> alt.stream().allMatch(i -> i.rule < 0 || finite[i.rule])).toList());
            }
            boolean[] nullable = new boolean[n];
            for (boolean changed = true; changed; ) {
                changed = false;
                for (int r = 0; r < n; r++) {
                    if (!nullable[r] && kept.get(r).stream().anyMatch(alt -> alt.stream().allMatch(i -> i.rule >= 0 && nullable[i.rule]))) {
                        nullable[r] = changed = true;
                    }
                }
            }
            // first[r]: the rules r may expand to before it reads a character.
            List<List<Integer>> first = new ArrayList<>(n);
            for (int r = 0; r < n; r++) {
                List<Integer> f = new ArrayList<>();
                for (List<Item> alt : kept.get(r)) {
                    for (Item i : alt) {
                        if (i.rule < 0) {
                            break;
                        }
                        f.add(i.rule);
                        if (!nullable[i.rule]) {
                            break;
                        }
                    }
                }
                first.add(f);
            }
            int[] mark = new int[n]; // 0 unseen, 1 on the path, 2 done
            for (int r = 0; r < n; r++) {
                leftRecursion(r, first, mark, new ArrayList<>());
            }
            List<Integer> code = new ArrayList<>();
            int[][] alternatives = new int[n][];
            for (int r = 0; r < n; r++) {
                List<List<Item>> alts = kept.get(r);
                alternatives[r] = new int[alts.size()];
                for (int a = 0; a < alts.size(); a++) {
                    alternatives[r][a] = code.size();
                    for (Item i : alts.get(a)) {
                        code.add(i.rule >= 0 ? -1 - i.rule : i.set);
                    }
                    code.add(END);
                }
            }
            return new Grammar(code.stream().mapToInt(Integer::intValue).toArray(), sets.toArray(int[][]::new),
                    alternatives, root);
        }

        private void leftRecursion(int r, List<List<Integer>> first, int[] mark, List<Integer> path) {
            if (mark[r] == 2) {
                return;
            }
            if (mark[r] == 1) {
                String cycle = path.subList(path.indexOf(r), path.size()).stream().map(this::userName)
                        .distinct().reduce((a, b) -> a + " -> " + b).orElse("") + " -> " + userName(r);
                throw new IllegalArgumentException("the grammar is left-recursive (" + cycle + "): a rule reaches "
                        + "itself before any character, which is not supported (as in llama.cpp); write it with "
                        + "repetition, e.g. 'list ::= item (\",\" item)*'");
            }
            mark[r] = 1;
            path.add(r);
            for (int s : first.get(r)) {
                leftRecursion(s, first, mark, path);
            }
            path.removeLast();
            mark[r] = 2;
        }

        /** The rule as its author named it (a helper rule is named after the rule it is in). */
        private String userName(int r) {
            String name = names.get(r);
            int hash = name.indexOf('#');
            return hash < 0 ? name : name.substring(0, hash);
        }

        private static int[] merge(List<int[]> ranges) {
            ranges.sort((a, b) -> Integer.compare(a[0], b[0]));
            List<int[]> out = new ArrayList<>();
            for (int[] r : ranges) {
                if (!out.isEmpty() && r[0] <= out.getLast()[1] + 1) {
                    out.getLast()[1] = Math.max(out.getLast()[1], r[1]);
                } else {
                    out.add(new int[] {r[0], r[1]});
                }
            }
            return out.stream().flatMapToInt(Arrays::stream).toArray();
        }

        private static int[] complement(int[] ranges) {
            List<int[]> out = new ArrayList<>();
            int next = 0;
            for (int i = 0; i < ranges.length; i += 2) {
                if (ranges[i] > next) {
                    out.add(new int[] {next, ranges[i] - 1});
                }
                next = ranges[i + 1] + 1;
            }
            if (next <= Character.MAX_CODE_POINT) {
                out.add(new int[] {next, Character.MAX_CODE_POINT});
            }
            return out.stream().flatMapToInt(Arrays::stream).toArray();
        }
    }
}
