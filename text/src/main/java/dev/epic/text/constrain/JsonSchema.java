package dev.epic.text.constrain;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.Vocabulary;
import dk.brics.automaton.Automaton;
import dk.brics.automaton.BasicAutomata;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.WeakHashMap;

/**
 * A JSON Schema compiled for constrained decoding: the subset OpenAI's strict structured outputs
 * use and the common validation keywords. Supported: {@code type} (one or a list), {@code properties}
 * (written in the order given), {@code required}, {@code additionalProperties} (false, true or a
 * schema: beside properties only the listed ones are written, which all allow; without, a schema
 * makes a map of any keys), {@code items}, {@code prefixItems} (or a draft-7 items list with
 * {@code additionalItems}), {@code minItems}, {@code maxItems}, {@code enum}, {@code const}, {@code anyOf} and {@code oneOf} (alternatives that
 * start with different bytes), {@code $ref} to {@code #/$defs/...} or {@code #/definitions/...}
 * (recursion included), {@code minLength}, {@code maxLength}, {@code pattern} and {@code format} for
 * strings ({@link StringRule}, {@link StringFormats}), {@code minimum}, {@code maximum} and their
 * exclusive forms for numbers ({@link NumberBounds}), and the annotations. Any other keyword is refused by name: the answer could not be guaranteed to match.
 * An object without {@code properties} (and not closed by {@code additionalProperties: false}) is
 * any object.
 */
public final class JsonSchema {
    static final int OBJECT = 1, ARRAY = 2, STRING = 4, NUMBER = 8, INTEGER = 16, BOOLEAN = 32, NULL = 64;
    static final int ANY_TYPE = OBJECT | ARRAY | STRING | NUMBER | BOOLEAN | NULL;
    private static final int MAX_ALTERNATIVES = 64;
    /** No node (declared before ANY_OBJECT, which is compiled during class initialisation). */
    private static final int[] NONE = {};
    /** Big decimals keep enum numbers as written (1.0 stays 1.0, long decimals keep their digits). */
    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(com.fasterxml.jackson.databind.DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);
    private static final Set<String> KEYWORDS = Set.of("type", "properties", "required", "additionalProperties",
            "items", "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "$ref", "minLength", "maxLength",
            "pattern", "format", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "prefixItems",
            "additionalItems");
    /** Strings longer than this cannot be generated within any context: a larger maxLength is no bound. */
    private static final int MAX_STRING = 1 << 22;
    private static final Set<String> ANNOTATIONS = Set.of("title", "description", "default", "examples", "$schema",
            "$id", "$comment", "$defs", "definitions", "strict", "name", "readOnly", "writeOnly", "deprecated",
            "nullable", "discriminator", "contentMediaType", "contentEncoding");
    private static final Map<String, JsonSchema> COMPILED = Collections.synchronizedMap(
            new LinkedHashMap<>(16, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<String, JsonSchema> e) {
                    return size() > 16;
                }
            });

    /** One schema node. Exactly one of: literals, alternatives, or types with their keywords. */
    static final class Node {
        int types;
        /** enum / const: the values as compact JSON bytes (the answer writes one of them exactly). */
        byte[][] literals;
        /** anyOf / oneOf: the alternatives (a oneOf's start with different bytes, so no value matches two). */
        int[] alternatives;
        boolean oneOf;
        /** Objects: property names (UTF-8, unescaped), their nodes, and which are required; null = any object. */
        byte[][] names;
        int[] values;
        boolean[] required;
        /** Strings: pattern, format and length bounds; null = any string. */
        StringRule string;
        /** Numbers: minimum and maximum; null = any number. */
        NumberBounds bounds;
        /** Objects without properties: the node of every value (0: any value). */
        int additional;
        /** Arrays: the nodes of the first items (prefixItems), then the node of the rest, and the bounds. */
        int[] prefix;
        int items = -1;
        int minItems;
        int maxItems = Integer.MAX_VALUE;
    }

    /** Any JSON object: OpenAI's JSON mode. Kept apart from the cache of request schemas. */
    public static final JsonSchema ANY_OBJECT = new JsonSchema(JSON.createObjectNode().put("type", "object"));

    final List<Node> nodes = new ArrayList<>();
    /** Where each anyOf node sits in the schema, for messages. */
    private final Map<Integer, String> anyOfPlaces = new HashMap<>();
    final int root;
    /** The node for "any JSON value" (an object without properties holds these). */
    final int any;
    private final Map<Vocabulary, TokenMask<SchemaCursor>> masks = Collections.synchronizedMap(new WeakHashMap<>());

    private JsonSchema(JsonNode schema) {
        Node a = new Node();
        a.types = ANY_TYPE;
        a.items = 0; // any array holds any values; names stay null: any object, any keys and values
        nodes.add(a);
        any = 0;
        Compiler c = new Compiler(schema);
        root = c.compile(schema, "#");
        first = new boolean[nodes.size()][];
        for (int i = 0; i < nodes.size(); i++) {
            first[i] = firstBytes(i);
        }
        for (int i = 0; i < nodes.size(); i++) {
            if (nodes.get(i).oneOf) {
                checkDisjoint(i);
            }
        }
        markSatisfiable();
        tabulatePicks();
        if (!satisfiable[root]) {
            throw new IllegalArgumentException("#: the schema allows no finite value");
        }
    }

    /** satisfiable[i]: some finite value matches node i; objects[i] / arrays[i]: one of that type does. */
    private boolean[] satisfiable, objects, arrays;

    /** Least fixpoint: a node is satisfiable once a value can be built from satisfiable parts. */
    private void markSatisfiable() {
        int n = nodes.size();
        satisfiable = new boolean[n];
        objects = new boolean[n];
        arrays = new boolean[n];
        for (boolean changed = true; changed; ) {
            changed = false;
            for (int i = 0; i < n; i++) {
                Node node = nodes.get(i);
                boolean object = (node.types & OBJECT) != 0 && (node.names == null || requiredSatisfiable(node));
                boolean array = (node.types & ARRAY) != 0 && itemsSatisfiable(node);
                boolean any = node.literals != null || object || array
                        || (node.types & (STRING | NUMBER | INTEGER | BOOLEAN | NULL)) != 0;
                if (node.alternatives != null) {
                    for (int a : node.alternatives) {
                        any |= satisfiable[a];
                    }
                }
                if (any != satisfiable[i] || object != objects[i] || array != arrays[i]) {
                    satisfiable[i] = any;
                    objects[i] = object;
                    arrays[i] = array;
                    changed = true;
                }
            }
        }
    }

    /** Whether the first minItems items of an array node can each be finished. */
    private boolean itemsSatisfiable(Node node) {
        for (int i = 0; i < node.minItems; i++) {
            if (!satisfiable[item(node, i)]) {
                return false;
            }
            if (node.prefix == null || i >= node.prefix.length) {
                return true; // the rest are all the items node, just checked
            }
        }
        return true;
    }

    /** The node of item i of an array node. */
    static int item(Node node, int i) {
        return node.prefix != null && i < node.prefix.length ? node.prefix[i] : node.items;
    }

    private boolean requiredSatisfiable(Node node) {
        for (int j = 0; j < node.names.length; j++) {
            if (node.required[j] && !satisfiable[node.values[j]]) {
                return false;
            }
        }
        return true;
    }

    /** Whether a value of node i can be finished (so the automaton may start one). */
    boolean satisfiable(int i) {
        return satisfiable[i];
    }

    /** Whether node i admits a finite object / array (a mixed-type node may admit only its other types). */
    boolean objectSatisfiable(int i) {
        return objects[i];
    }

    boolean arraySatisfiable(int i) {
        return arrays[i];
    }

    /** first[i][b]: a value of node i may start with byte b. */
    private final boolean[][] first;

    /**
     * The compiled schema of {@code schemaJson}, shared by requests that send the same schema (so are
     * their token masks).
     *
     * @throws IllegalArgumentException naming the keyword or place this server cannot honour
     */
    public static JsonSchema compile(String schemaJson) {
        JsonNode node;
        try {
            node = JSON.readTree(schemaJson);
        } catch (java.io.IOException e) {
            throw new IllegalArgumentException("json_schema is not valid JSON: " + e.getMessage());
        }
        if (node == null || !(node.isObject() || node.isBoolean())) {
            throw new IllegalArgumentException("json_schema must be a JSON object (or true)");
        }
        String canonical = node.toString();
        JsonSchema known = COMPILED.get(canonical);
        if (known != null) {
            return known;
        }
        JsonSchema s = new JsonSchema(node);
        COMPILED.put(canonical, s);
        return s;
    }

    TokenMask<SchemaCursor> mask(Vocabulary vocab) {
        return masks.computeIfAbsent(vocab, v -> new TokenMask<>(v, 512));
    }

    Node node(int i) {
        return nodes.get(i);
    }

    private final class Compiler {
        private final JsonNode document;
        private final Map<String, Integer> refs = new HashMap<>();

        Compiler(JsonNode document) {
            this.document = document;
        }

        int compile(JsonNode s, String where) {
            if (s.isBoolean()) {
                if (!s.asBoolean()) {
                    throw new IllegalArgumentException(where + ": the schema false allows no value");
                }
                return any;
            }
            if (!s.isObject()) {
                throw new IllegalArgumentException(where + ": a schema must be an object");
            }
            // allOf of one schema is that schema (pydantic writes {"allOf": [{"$ref": ...}]} beside a description).
            JsonNode all = s.get("allOf");
            if (all != null) {
                if (!all.isArray() || all.size() != 1 || s.properties().stream().anyMatch(e -> !e.getKey().equals("allOf")
                        && !ANNOTATIONS.contains(e.getKey()))) {
                    throw new IllegalArgumentException(where + ": allOf is supported with one schema and nothing beside it");
                }
                return compile(all.get(0), where + "/allOf/0");
            }
            List<String> keywords = new ArrayList<>();
            for (Iterator<String> it = s.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (ANNOTATIONS.contains(k)) {
                    continue;
                }
                if (!KEYWORDS.contains(k)) {
                    throw new IllegalArgumentException(where + ": keyword '" + k + "' is not supported");
                }
                keywords.add(k);
            }
            // $ref and anyOf stand alone; enum and const take only a type beside them (it filters the values)
            // and a format (their values are written as given).
            for (String alone : List.of("$ref", "anyOf", "oneOf")) {
                if (keywords.contains(alone) && keywords.size() > 1) {
                    throw new IllegalArgumentException(where + ": keywords beside '" + alone + "' are not supported: "
                            + keywords);
                }
            }
            if ((keywords.contains("enum") || keywords.contains("const"))
                    && keywords.stream().anyMatch(k -> !Set.of("type", "enum", "const", "format").contains(k))
                    || keywords.contains("enum") && keywords.contains("const")) {
                throw new IllegalArgumentException(where + ": enum and const take only 'type' beside them: " + keywords);
            }
            if (s.has("$ref")) {
                return ref(s.get("$ref").asText(), where);
            }
            int id = nodes.size();
            Node n = new Node();
            nodes.add(n);
            if (s.has("enum") || s.has("const")) {
                List<JsonNode> values = new ArrayList<>();
                if (s.has("const")) {
                    values.add(s.get("const"));
                } else if (s.get("enum").isArray() && !s.get("enum").isEmpty()) {
                    s.get("enum").forEach(values::add);
                } else {
                    throw new IllegalArgumentException(where + ": enum must be a non-empty array");
                }
                if (s.has("type")) {
                    int types = types(s, where);
                    values.removeIf(v -> !ofType(v, types));
                    if (values.isEmpty()) {
                        throw new IllegalArgumentException(where + ": no enum value has the schema's type");
                    }
                }
                String format = s.has("format") ? StringFormats.pattern(s.get("format").asText()) : null;
                if (format != null) { // an enforced format holds its strings too
                    Automaton f = pattern(format, where);
                    values.removeIf(v -> v.isTextual() && !f.run(v.asText()));
                    if (values.isEmpty()) {
                        throw new IllegalArgumentException(where + ": no enum value has the schema's format");
                    }
                }
                if (values.size() > MAX_ALTERNATIVES) {
                    throw new IllegalArgumentException(where + ": enum has more than " + MAX_ALTERNATIVES + " values");
                }
                for (JsonNode v : values) {
                    if (v.isNumber() && !Double.isFinite(v.asDouble())) {
                        throw new IllegalArgumentException(where + ": enum value " + v + " is not a finite number");
                    }
                }
                n.literals = values.stream().map(v -> v.toString().getBytes(StandardCharsets.UTF_8)).toArray(byte[][]::new);
                return id;
            }
            if (s.has("anyOf") || s.has("oneOf")) {
                // anyOf alternatives may overlap: the cursor follows each way a value can still go. A
                // oneOf's must start with different bytes or carry a discriminator, so that no value matches two.
                String keyword = s.has("anyOf") ? "anyOf" : "oneOf";
                JsonNode alts = s.get(keyword);
                if (!alts.isArray() || alts.isEmpty()) {
                    throw new IllegalArgumentException(where + ": " + keyword + " must be a non-empty array of schemas");
                }
                if (alts.size() > MAX_ALTERNATIVES) {
                    throw new IllegalArgumentException(where + ": " + keyword + " has " + alts.size()
                            + " alternatives; at most " + MAX_ALTERNATIVES + " are supported");
                }
                int[] a = new int[alts.size()];
                for (int i = 0; i < a.length; i++) {
                    a[i] = compile(alts.get(i), where + "/" + keyword + "/" + i);
                }
                n.alternatives = a;
                n.oneOf = keyword.equals("oneOf");
                anyOfPlaces.put(id, where);
                return id;
            }
            n.types = types(s, where);
            if (n.types == 0) {
                throw new IllegalArgumentException(where + ": an empty type list allows no value");
            }
            if (s.has("required") && (!s.get("required").isArray() || !s.has("properties"))) {
                throw new IllegalArgumentException(where + ": required must be an array of names from properties");
            }
            if ((n.types & OBJECT) != 0) {
                JsonNode props = s.get("properties");
                JsonNode additional = s.get("additionalProperties");
                if (additional != null && !additional.isBoolean() && !additional.isObject()) {
                    throw new IllegalArgumentException(where + ": additionalProperties must be a boolean or a schema");
                }
                boolean closed = additional != null && additional.isBoolean() && !additional.asBoolean();
                if (props == null && additional != null && additional.isObject()) {
                    // A map (pydantic's dict[str, X]): any keys, each value matching the schema. Beside
                    // properties it needs nothing: only the listed properties are written.
                    n.additional = compile(additional, where + "/additionalProperties");
                }
                if (props != null || closed) {
                    List<String> names = new ArrayList<>();
                    if (props != null) {
                        if (!props.isObject()) {
                            throw new IllegalArgumentException(where + ": properties must be an object");
                        }
                        props.fieldNames().forEachRemaining(names::add);
                    }
                    if (names.size() > MAX_ALTERNATIVES - 1) {
                        throw new IllegalArgumentException(where + ": more than " + (MAX_ALTERNATIVES - 1) + " properties");
                    }
                    Set<String> required = new java.util.HashSet<>();
                    if (s.has("required")) {
                        s.get("required").forEach(r -> required.add(r.asText()));
                        for (String r : required) {
                            if (!names.contains(r)) {
                                throw new IllegalArgumentException(where + ": required property '" + r + "' is not in properties");
                            }
                        }
                    }
                    n.names = new byte[names.size()][];
                    n.values = new int[names.size()];
                    n.required = new boolean[names.size()];
                    for (int i = 0; i < names.size(); i++) {
                        String name = names.get(i);
                        if (name.chars().anyMatch(ch -> ch == '"' || ch == '\\' || ch < 0x20)) {
                            throw new IllegalArgumentException(where + ": property names needing escapes are not supported");
                        }
                        n.names[i] = name.getBytes(StandardCharsets.UTF_8);
                        n.required[i] = required.contains(name);
                    }
                    for (int i = 0; i < names.size(); i++) {
                        n.values[i] = compile(props.get(names.get(i)), where + "/properties/" + names.get(i));
                    }
                }
            }
            if ((n.types & STRING) != 0) {
                n.string = stringRule(s, where);
            }
            if ((n.types & (NUMBER | INTEGER)) != 0) {
                n.bounds = numberBounds(s, (n.types & NUMBER) == 0, where);
            }
            if ((n.types & ARRAY) != 0) {
                // A tuple: prefixItems (or draft 7's items list), then items (additionalItems) for the rest.
                JsonNode tuple = s.has("prefixItems") ? s.get("prefixItems") : s.path("items").isArray() ? s.get("items") : null;
                JsonNode rest = tuple == null ? s.get("items") : s.has("prefixItems") ? s.get("items") : s.get("additionalItems");
                n.minItems = length(s, "minItems", where);
                n.maxItems = s.has("maxItems") ? length(s, "maxItems", where) : Integer.MAX_VALUE;
                if (tuple != null) {
                    if (!tuple.isArray() || tuple.size() > MAX_ALTERNATIVES) {
                        throw new IllegalArgumentException(where + ": prefixItems must be a list of at most "
                                + MAX_ALTERNATIVES + " schemas");
                    }
                    n.prefix = new int[tuple.size()];
                    for (int i = 0; i < n.prefix.length; i++) {
                        n.prefix[i] = compile(tuple.get(i), where + "/prefixItems/" + i);
                    }
                }
                if (rest != null && rest.isBoolean() && !rest.asBoolean()) { // no items past the prefix
                    n.maxItems = Math.min(n.maxItems, n.prefix == null ? 0 : n.prefix.length);
                    n.items = any;
                } else {
                    n.items = rest != null ? compile(rest, where + "/items") : any;
                }
                if (n.maxItems < n.minItems) {
                    throw new IllegalArgumentException(where + ": minItems/maxItems allow no array");
                }
                if (2L * n.minItems - 1 > MAX_STRING) { // an item takes a character at least, and a comma after
                    throw new IllegalArgumentException(where + ": minItems " + n.minItems
                            + " needs more characters than any generation holds");
                }
            }
            return id;
        }

        /** The string keywords as one rule, or null when the node takes any string. */
        private StringRule stringRule(JsonNode s, String where) {
            int min = length(s, "minLength", where), max = s.has("maxLength") ? length(s, "maxLength", where) : Integer.MAX_VALUE;
            if (max > MAX_STRING) {
                max = Integer.MAX_VALUE; // longer than any generation
            }
            if (min > MAX_STRING) {
                throw new IllegalArgumentException(where + ": minLength " + min + " is longer than any generation");
            }
            Automaton chars = null;
            if (s.has("pattern")) {
                if (!s.get("pattern").isTextual()) {
                    throw new IllegalArgumentException(where + ": pattern must be a string");
                }
                chars = pattern(s.get("pattern").asText(), where);
            }
            String format = s.has("format") ? StringFormats.pattern(s.get("format").asText()) : null;
            if (format != null) {
                Automaton f = pattern(format, where);
                chars = chars == null ? f : chars.intersection(f);
            }
            if (chars == null && min == 0 && max == Integer.MAX_VALUE) {
                return null;
            }
            StringRule rule = new StringRule(chars == null ? BasicAutomata.makeAnyString() : chars, min, max, where);
            if (!rule.live(rule.start(), 0)) {
                throw new IllegalArgumentException(where + ": pattern, format and length bounds together allow no string");
            }
            return rule;
        }

        private static Automaton pattern(String pattern, String where) {
            try {
                return EcmaPattern.compile(pattern);
            } catch (IllegalArgumentException e) {
                throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
            }
        }

        /** A non-negative count keyword (a length, a number of items); past Integer.MAX_VALUE - 1 it saturates. */
        private static int length(JsonNode s, String keyword, String where) {
            JsonNode v = s.get(keyword);
            if (v == null) {
                return 0;
            }
            if (!v.canConvertToExactIntegral() || v.decimalValue().signum() < 0) {
                throw new IllegalArgumentException(where + ": " + keyword + " must be a non-negative integer");
            }
            return v.decimalValue().min(java.math.BigDecimal.valueOf(Integer.MAX_VALUE - 1)).intValueExact();
        }

        /** minimum, maximum and their exclusive forms (numbers since draft 6, flags beside minimum/maximum in draft 4). */
        private NumberBounds numberBounds(JsonNode s, boolean integer, String where) {
            if (!(s.has("minimum") || s.has("maximum") || s.has("exclusiveMinimum") || s.has("exclusiveMaximum"))) {
                return null;
            }
            BigDecimal[] min = {decimal(s, "minimum", where)}, max = {decimal(s, "maximum", where)};
            boolean minExclusive = exclusive(s, "exclusiveMinimum", min, 1, where);
            boolean maxExclusive = exclusive(s, "exclusiveMaximum", max, -1, where);
            return new NumberBounds(integer, min[0], minExclusive, max[0], maxExclusive, where);
        }

        /**
         * Applies an exclusive bound to {@code bound[0]}: a flag makes it exclusive, a number replaces it
         * where tighter (direction 1 for a minimum, -1 for a maximum). Returns whether the bound is exclusive.
         */
        private static boolean exclusive(JsonNode s, String keyword, BigDecimal[] bound, int direction, String where) {
            JsonNode e = s.get(keyword);
            if (e == null) {
                return false;
            }
            if (e.isBoolean()) {
                return e.asBoolean() && bound[0] != null;
            }
            BigDecimal v = decimal(s, keyword, where);
            if (bound[0] == null || v.compareTo(bound[0]) * direction >= 0) {
                bound[0] = v;
                return true;
            }
            return false;
        }

        private static BigDecimal decimal(JsonNode s, String keyword, String where) {
            JsonNode v = s.get(keyword);
            if (v == null) {
                return null;
            }
            if (!v.isNumber()) {
                throw new IllegalArgumentException(where + ": " + keyword + " must be a number");
            }
            return v.decimalValue();
        }

        private static boolean ofType(JsonNode v, int types) {
            return v.isObject() ? (types & OBJECT) != 0 : v.isArray() ? (types & ARRAY) != 0
                    : v.isTextual() ? (types & STRING) != 0 : v.isIntegralNumber() ? (types & (NUMBER | INTEGER)) != 0
                    : v.isNumber() ? (types & NUMBER) != 0 : v.isBoolean() ? (types & BOOLEAN) != 0
                    : v.isNull() && (types & NULL) != 0;
        }

        private int types(JsonNode s, String where) {
            JsonNode t = s.get("type");
            if (t == null) {
                return ANY_TYPE;
            }
            int nullable = s.path("nullable").asBoolean(false) ? NULL : 0; // OpenAPI 3.0's way to say "or null"
            int types = 0;
            for (JsonNode one : t.isArray() ? t : List.of(t)) {
                types |= switch (one.asText()) {
                    case "object" -> OBJECT;
                    case "array" -> ARRAY;
                    case "string" -> STRING;
                    case "number" -> NUMBER;
                    case "integer" -> INTEGER;
                    case "boolean" -> BOOLEAN;
                    case "null" -> NULL;
                    default -> throw new IllegalArgumentException(where + ": unknown type '" + one.asText() + "'");
                };
            }
            types |= nullable;
            return (types & NUMBER) != 0 ? types & ~INTEGER : types; // number includes the integers
        }

        private int ref(String ref, String where) {
            Integer known = refs.get(ref);
            if (known != null) {
                return known;
            }
            String[] parts = ref.split("/");
            if (parts.length != 3 || !parts[0].equals("#") || !(parts[1].equals("$defs") || parts[1].equals("definitions"))) {
                throw new IllegalArgumentException(where + ": $ref '" + ref + "' is not supported (use #/$defs/NAME)");
            }
            JsonNode target = document.path(parts[1]).get(parts[2]);
            if (target == null) {
                throw new IllegalArgumentException(where + ": $ref '" + ref + "' points nowhere");
            }
            // A placeholder alternative of one, filled once the target is compiled: recursion ends here.
            int id = nodes.size();
            Node placeholder = new Node();
            nodes.add(placeholder);
            refs.put(ref, id);
            placeholder.alternatives = new int[] {compile(target, ref)};
            return id;
        }
    }

    /** The bytes a value of node i may start with (whitespace aside). */
    private boolean[] firstBytes(int i) {
        boolean[] first = new boolean[256];
        firstBytes(i, first, new java.util.HashSet<>());
        return first;
    }

    private void firstBytes(int i, boolean[] first, Set<Integer> seen) {
        if (!seen.add(i)) {
            return;
        }
        Node n = nodes.get(i);
        if (n.literals != null) {
            for (byte[] l : n.literals) {
                first[l[0] & 0xff] = true;
            }
        } else if (n.alternatives != null) {
            for (int a : n.alternatives) {
                firstBytes(a, first, seen);
            }
        } else {
            if ((n.types & OBJECT) != 0) first['{'] = true;
            if ((n.types & ARRAY) != 0) first['['] = true;
            if ((n.types & STRING) != 0) first['"'] = true;
            if ((n.types & (NUMBER | INTEGER)) != 0) {
                first['-'] = true;
                for (char c = '0'; c <= '9'; c++) first[c] = true;
            }
            if ((n.types & BOOLEAN) != 0) {
                first['t'] = true;
                first['f'] = true;
            }
            if ((n.types & NULL) != 0) first['n'] = true;
        }
    }

    private void checkDisjoint(int i) {
        int[] alts = nodes.get(i).alternatives;
        if (discriminated(alts)) {
            return;
        }
        boolean[] seen = new boolean[256];
        for (int a : alts) {
            boolean[] f = first[a];
            for (int b = 0; b < 256; b++) {
                if (f[b] && seen[b]) {
                    throw new IllegalArgumentException(anyOfPlaces.getOrDefault(i, "#") + ": oneOf alternatives that "
                            + "can start with the same byte ('" + (char) b + "') are not supported (anyOf ones are)");
                }
                seen[b] |= f[b];
            }
        }
    }

    /**
     * Whether the alternatives are object models told apart by a discriminator (pydantic's
     * discriminated unions): one property, required in each, holding one constant, different in each.
     * Then no value matches two of them, and the cursor follows them as it follows anyOf.
     */
    private boolean discriminated(int[] alts) {
        List<Node> models = new ArrayList<>();
        for (int a : alts) {
            Node n = nodes.get(a);
            while (n.alternatives != null && n.alternatives.length == 1) { // a $ref
                n = nodes.get(n.alternatives[0]);
            }
            if (n.names == null || n.alternatives != null) {
                return false;
            }
            models.add(n);
        }
        Node first = models.getFirst();
        for (int p = 0; p < first.names.length; p++) {
            Set<String> tags = new java.util.HashSet<>();
            boolean all = true;
            for (Node m : models) {
                String tag = tag(m, first.names[p]);
                all &= tag != null && tags.add(tag);
            }
            if (all) {
                return true;
            }
        }
        return false;
    }

    /** The one constant a model's required property {@code name} holds, as JSON text, or null. */
    private String tag(Node model, byte[] name) {
        for (int j = 0; j < model.names.length; j++) {
            if (java.util.Arrays.equals(model.names[j], name) && model.required[j]) {
                Node v = nodes.get(model.values[j]);
                return v.literals != null && v.literals.length == 1 ? new String(v.literals[0], StandardCharsets.UTF_8) : null;
            }
        }
        return null;
    }

    /**
     * The nodes a value of node i starting with byte b can be (anyOf and $ref resolved): one for a
     * deterministic schema, several where anyOf alternatives overlap, none if no value starts so.
     */
    int[] picks(int i, int b) {
        return picks[i][b];
    }

    /** picks[i][b], computed once at compile time: a value starts once per token in the masks' walks. */
    private int[][][] picks;

    private void tabulatePicks() {
        picks = new int[nodes.size()][256][];
        for (int i = 0; i < nodes.size(); i++) {
            int[] self = {i};
            for (int b = 0; b < 256; b++) {
                if (nodes.get(i).alternatives == null) {
                    picks[i][b] = first[i][b] && satisfiable[i] ? self : NONE;
                } else {
                    java.util.LinkedHashSet<Integer> leaves = new java.util.LinkedHashSet<>();
                    collect(i, b, leaves, new java.util.HashSet<>());
                    picks[i][b] = leaves.isEmpty() ? NONE : leaves.stream().mapToInt(Integer::intValue).toArray();
                }
            }
        }
    }

    private void collect(int i, int b, Set<Integer> leaves, Set<Integer> seen) {
        if (!seen.add(i) || !first[i][b] || !satisfiable[i]) {
            return;
        }
        Node n = nodes.get(i);
        if (n.alternatives == null) {
            leaves.add(i);
            return;
        }
        for (int a : n.alternatives) {
            collect(a, b, leaves, seen);
        }
    }
}
