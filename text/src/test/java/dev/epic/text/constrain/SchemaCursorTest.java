package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.epic.text.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * JSON-schema constrained answers: hand-picked texts, refusals of what the compiler cannot honour,
 * and random walks through the real vocabulary whose finished answers an independent validator checks.
 */
class SchemaCursorTest {
    private static final ObjectMapper STRICT = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final String PERSON = """
            {"type": "object",
             "properties": {
               "name": {"type": "string"},
               "age": {"type": "integer"},
               "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
               "role": {"enum": ["admin", "user", null]},
               "score": {"anyOf": [{"type": "number"}, {"type": "null"}]},
               "next": {"$ref": "#/$defs/node"}},
             "required": ["name", "age", "next"],
             "additionalProperties": false,
             "$defs": {"node": {"type": ["object", "null"],
                                "properties": {"v": {"type": "boolean"}, "next": {"$ref": "#/$defs/node"}},
                                "required": ["v"]}}}""";

    /** -1: some byte cannot follow; 0: a valid prefix; 1: a whole answer. */
    static int verdict(JsonSchema schema, String text) {
        SchemaCursor c = new SchemaCursor(schema);
        for (byte b : text.getBytes(StandardCharsets.UTF_8)) {
            if (!c.step(b & 0xff)) {
                return -1;
            }
        }
        return c.complete() ? 1 : 0;
    }

    @Test
    void answersMatchingTheSchema() {
        JsonSchema s = JsonSchema.compile(PERSON);
        for (String ok : List.of("{\"name\":\"a\",\"age\":3,\"next\":null}",
                "{ \"name\" : \"é\\n\", \"age\": -10, \"tags\": [\"x\", \"y\"], \"role\": \"admin\", \"score\": 1.5e3,"
                        + " \"next\": {\"v\": true, \"next\": {\"v\": false}} }",
                "{\"name\":\"\",\"age\":0,\"role\":null,\"score\":null,\"next\":{\"v\":true}}",
                "{\"name\":\"n\",\"age\":12,\"tags\":[],\"next\":null}")) {
            assertEquals(1, verdict(s, ok), ok);
            assertEquals(0, verdict(s, ok.substring(0, ok.length() - 1)), ok);
        }
    }

    @Test
    void answersBreakingTheSchema() {
        JsonSchema s = JsonSchema.compile(PERSON);
        for (String bad : List.of("{\"age\":3,\"name\":\"a\",\"next\":null}", "{\"name\":\"a\",\"next\":null}",
                "{\"name\":\"a\",\"age\":1.5,\"next\":null}", "{\"name\":\"a\",\"age\":1,\"tags\":[\"1\",\"2\",\"3\",\"4\"],\"next\":null}",
                "{\"name\":\"a\",\"age\":1,\"role\":\"guest\",\"next\":null}", "{\"name\":\"a\",\"age\":1,\"next\":null,\"x\":1}",
                "{\"name\":\"a\",\"age\":1,\"next\":{\"next\":null}}", "{\"name\":\"a\",\"age\":1,\"next\":null,}",
                "{\"name\":1,\"age\":1,\"next\":null}", "[]", "{\"name\":\"a\",\"age\":1,\"score\":\"1\",\"next\":null}",
                "{\"name\":\"a\",\"age\":01,\"next\":null}")) {
            assertEquals(-1, verdict(s, bad), bad);
        }
    }

    @Test
    void scalarsAndEnumsAtTheTop() {
        JsonSchema number = JsonSchema.compile("{\"type\": \"number\"}");
        assertEquals(1, verdict(number, "-12.5e+3"));
        assertEquals(0, verdict(number, "-12."));
        JsonSchema sizes = JsonSchema.compile("{\"enum\": [1, 12, \"big\"]}");
        assertEquals(1, verdict(sizes, "1"));
        assertEquals(1, verdict(sizes, "12"));
        assertEquals(-1, verdict(sizes, "123"));
        assertEquals(1, verdict(sizes, "\"big\""));
        assertEquals(1, verdict(JsonSchema.compile("true"), "[1, {\"a\": null}, \"s\"]"), "the schema true takes any value");
        JsonSchema any = JsonSchema.compile("{}");
        assertEquals(1, verdict(any, "{\n    \"a\": {\n        \"b\": [\n            1\n        ]\n    }\n}"),
                "indentation at every depth");
        assertEquals(-1, verdict(any, " ".repeat(SchemaPath.maxWhitespace(1) + 1) + "1"), "no pages of blanks");
    }

    /** A type beside enum filters its values; other keywords beside enum, const, anyOf or $ref are refused. */
    @Test
    void keywordsBesideEnumsAndReferences() {
        JsonSchema typed = JsonSchema.compile("{\"type\": \"string\", \"enum\": [\"a\", 1, null]}");
        assertEquals(1, verdict(typed, "\"a\""));
        assertEquals(-1, verdict(typed, "1"));
        assertEquals(-1, verdict(typed, "null"));
        for (String[] c : new String[][] {{"{\"type\": \"string\", \"enum\": [1]}", "no enum value"},
                {"{\"enum\": [[1, 2, 3]], \"maxItems\": 2}", "enum and const"},
                {"{\"const\": \"a\", \"enum\": [\"b\"]}", "enum and const"},
                {"{\"anyOf\": [{\"type\": \"array\"}, {\"type\": \"null\"}], \"minItems\": 2}", "beside 'anyOf'"},
                {"{\"$ref\": \"#/$defs/x\", \"maxItems\": 1, \"$defs\": {\"x\": {\"type\": \"array\"}}}", "beside '$ref'"},
                {"{\"type\": \"object\", \"required\": [\"a\"]}", "required"},
                {"{\"type\": []}", "allows no value"},
                {"{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"type\": \"object\", \"properties\": "
                        + "{\"n\": {\"$ref\": \"#/$defs/a\"}}, \"required\": [\"n\"]}}}", "no finite value"}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JsonSchema.compile(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
        // An object branch no finite value can finish is never started; the null branch still is.
        JsonSchema mixed = JsonSchema.compile("{\"type\": [\"object\", \"null\"], \"properties\": {\"x\": "
                + "{\"$ref\": \"#/$defs/bad\"}}, \"required\": [\"x\"], \"$defs\": {\"bad\": {\"type\": \"object\", "
                + "\"properties\": {\"y\": {\"$ref\": \"#/$defs/bad\"}}, \"required\": [\"y\"]}}}");
        assertEquals(-1, verdict(mixed, "{"));
        assertEquals(1, verdict(mixed, "null"));
    }

    /** At the frame limit a recursive answer can still be finished: only what can close stays allowed. */
    @Test
    void deepRecursionNeverReachesADeadEnd() {
        JsonSchema list = JsonSchema.compile(PERSON);
        SchemaCursor at = new SchemaCursor(list);
        assertTrue(at.step("{\"name\":\"a\",\"age\":1,\"next\":".getBytes(StandardCharsets.UTF_8)));
        int opened = 1;
        while (true) {
            SchemaCursor trial = at.copy();
            if (!trial.step("{\"v\":true,\"next\":".getBytes(StandardCharsets.UTF_8))) {
                break;
            }
            at = trial;
            opened++;
            assertTrue(opened < 100, "the frame limit stops the nesting");
        }
        assertTrue(at.step(("null" + "}".repeat(opened)).getBytes(StandardCharsets.UTF_8)));
        assertTrue(at.complete());
        JsonSchema arrays = JsonSchema.compile("{\"$ref\": \"#/$defs/a\", \"$defs\": {\"a\": {\"type\": \"array\", "
                + "\"items\": {\"$ref\": \"#/$defs/a\"}}}}");
        SchemaCursor nest = new SchemaCursor(arrays);
        int depth = 0;
        while (nest.copy().step('[')) {
            nest.step('[');
            depth++;
        }
        assertTrue(nest.step("]".repeat(depth).getBytes(StandardCharsets.UTF_8)) && nest.complete());
    }

    @Test
    void whatCannotBeHonouredIsRefusedByName() {
        for (String[] c : new String[][] {{"{\"type\": \"string\", \"pattern\": \"(?=a)\"}", "lookaround"},
                {"{\"oneOf\": [{\"type\": \"object\"}, {\"type\": \"object\", \"properties\": {}}]}", "same byte"},
                {"{\"$ref\": \"#/$defs/missing\"}", "points nowhere"},
                {"{\"type\": \"object\", \"additionalProperties\": 5}", "additionalProperties"},
                {"{\"type\": \"object\", \"properties\": {\"a\": {}}, \"required\": [\"b\"]}", "'b'"},
                {"{\"type\": \"strnig\"}", "strnig"}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JsonSchema.compile(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), e.getMessage());
        }
        assertTrue(JsonSchema.compile(PERSON) == JsonSchema.compile(PERSON.replace("\n", " ")), "one compiled schema per text");
    }

    /**
     * Random walks through the real vocabulary under the schema's mask: the mask equals stepping every
     * token at the first steps, and every finished answer parses and passes an independent validator.
     */
    @Test
    void randomWalksWriteValidAnswers() throws Exception {
        Tokenizer v3 = Tokenizer.deepSeekV3();
        JsonSchema s = JsonSchema.compile(PERSON);
        TokenMask<SchemaCursor> mask = s.mask(v3);
        JsonNode schema = STRICT.readTree(PERSON);
        Random rng = new Random(17);
        int finished = 0;
        for (int walk = 0; walk < 8; walk++) {
            SchemaCursor at = new SchemaCursor(s);
            int first = walk;
            byte[] bytes = Walks.walk(mask, v3, at, rng, 400, step -> first == 0 && step < 12);
            if (at.complete()) {
                JsonNode value = STRICT.readTree(bytes);
                assertTrue(valid(value, schema, schema), new String(bytes, StandardCharsets.UTF_8));
                finished++;
            }
        }
        assertTrue(finished >= 2, "walks that finished: " + finished);
    }


    /** JSON Schema semantics for the supported keywords, written apart from the compiler. */
    private static boolean valid(JsonNode v, JsonNode s, JsonNode root) {
        if (s.isBoolean()) {
            return s.asBoolean();
        }
        if (s.has("$ref")) {
            String[] p = s.get("$ref").asText().split("/");
            return valid(v, root.get(p[1]).get(p[2]), root);
        }
        if (s.has("const")) {
            return s.get("const").equals(v);
        }
        if (s.has("enum")) {
            for (JsonNode e : s.get("enum")) {
                if (e.equals(v)) {
                    return true;
                }
            }
            return false;
        }
        if (s.has("anyOf")) {
            for (JsonNode a : s.get("anyOf")) {
                if (valid(v, a, root)) {
                    return true;
                }
            }
            return false;
        }
        if (s.has("type")) {
            boolean typed = false;
            for (JsonNode t : s.get("type").isArray() ? s.get("type") : List.of(s.get("type"))) {
                typed |= switch (t.asText()) {
                    case "object" -> v.isObject();
                    case "array" -> v.isArray();
                    case "string" -> v.isTextual();
                    case "number" -> v.isNumber();
                    case "integer" -> v.isIntegralNumber();
                    case "boolean" -> v.isBoolean();
                    default -> v.isNull();
                };
            }
            if (!typed) {
                return false;
            }
        }
        if (v.isObject() && s.has("properties")) {
            for (JsonNode r : s.path("required")) {
                if (!v.has(r.asText())) {
                    return false;
                }
            }
            for (Iterator<String> it = v.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!s.get("properties").has(k) ? s.path("additionalProperties").isBoolean()
                        && !s.get("additionalProperties").asBoolean() : !valid(v.get(k), s.get("properties").get(k), root)) {
                    return false;
                }
            }
        }
        if (v.isArray()) {
            if (v.size() < s.path("minItems").asInt(0) || v.size() > s.path("maxItems").asInt(Integer.MAX_VALUE)) {
                return false;
            }
            for (JsonNode item : v) {
                if (s.has("items") && !valid(item, s.get("items"), root)) {
                    return false;
                }
            }
        }
        return true;
    }
}
