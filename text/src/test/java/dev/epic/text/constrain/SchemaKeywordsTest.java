package dev.epic.text.constrain;

import static dev.epic.text.constrain.SchemaCursorTest.verdict;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.text.tokenizer.Tokenizer;
import java.math.BigDecimal;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * The string and number keywords ({@code pattern}, {@code format}, {@code minLength}, {@code maxLength},
 * {@code minimum}, {@code maximum} and the exclusive forms), checked three ways: whole texts against an
 * independent validator, every prefix the cursor takes against a search for a completion (no dead
 * ends), and random walks through the real vocabulary whose answers the validator checks.
 */
class SchemaKeywordsTest {
    /** Pieces strings are built from: ASCII, two- and four-byte UTF-8, and escapes. */
    private static final List<String> PIECES = List.of("a", "b", "Z", "1", "-", ".", "é", "😀", "\\n", "\\u0061",
            "\\\"", "\\u00e9", " ");

    private static List<String> strings(int maxPieces) {
        List<String> out = new ArrayList<>(List.of(""));
        List<String> layer = List.of("");
        for (int n = 0; n < maxPieces; n++) {
            List<String> next = new ArrayList<>();
            for (String s : layer) {
                for (String p : PIECES) {
                    next.add(s + p);
                }
            }
            out.addAll(next);
            layer = next;
        }
        return out;
    }

    @Test
    void stringsMatchTheValidatorExactly() {
        for (String schemaJson : List.of("{\"type\": \"string\", \"minLength\": 2, \"maxLength\": 3}",
                "{\"type\": \"string\", \"pattern\": \"^[a-z]+(-[a-z]+)?$\"}",
                "{\"type\": \"string\", \"pattern\": \"a\\\\d\", \"maxLength\": 3}",
                "{\"type\": \"string\", \"pattern\": \"^.$\"}",
                "{\"type\": \"string\", \"pattern\": \"^[^a]*é\", \"minLength\": 2}",
                "{\"type\": \"string\", \"pattern\": \"^\\\\n?\\\"?$\"}")) {
            JsonSchema s = JsonSchema.compile(schemaJson);
            Validator validator = new Validator(schemaJson);
            for (String body : strings(3)) {
                String text = "\"" + body + "\"";
                assertEquals(validator.valid(text), verdict(s, text) == 1, schemaJson + " on " + text);
            }
        }
    }

    @Test
    void formatsHoldOnlyValidValues() {
        String[][] cases = {
                {"date", "2026-11-26", "2024-02-29", "2000-02-29", "1999-12-31"},
                {"date", "!2023-02-29", "!1900-02-29", "!2026-13-01", "!2026-04-31", "!2026-1-01"},
                {"time", "23:59:59Z", "00:00:00.123+05:30", "!24:00:00Z", "!12:00:00", "!12:60:00Z"},
                {"date-time", "2026-11-26T08:15:00Z", "2026-11-26T08:15:00.5-01:00", "!2026-11-26 08:15:00Z"},
                {"uuid", "123e4567-e89b-12d3-a456-426614174000", "!123e4567e89b12d3a456426614174000"},
                {"ipv4", "192.168.0.1", "0.0.0.0", "!256.1.1.1", "!01.2.3.4", "!1.2.3"}};
        for (String[] c : cases) {
            String schemaJson = "{\"type\": \"string\", \"format\": \"" + c[0] + "\"}";
            JsonSchema s = JsonSchema.compile(schemaJson);
            Validator validator = new Validator(schemaJson);
            for (int i = 1; i < c.length; i++) {
                boolean good = !c[i].startsWith("!");
                String text = "\"" + (good ? c[i] : c[i].substring(1)) + "\"";
                assertEquals(good, verdict(s, text) == 1, c[0] + " " + text);
                if (good) { // the validator is laxer in places (it takes a space for the T of a date-time)
                    assertTrue(validator.valid(text), "the validator agrees on " + c[0] + " " + text);
                }
            }
        }
        // An explicit range up to U+FFFF holds no character past it (only negations and '.' do); a huge
        // length saturates rather than wraps.
        assertEquals(-1, verdict(JsonSchema.compile("{\"type\": \"string\", \"pattern\": \"^[\\\\u0000-\\\\uffff]$\"}"),
                "\"😀\""));
        assertEquals(1, verdict(JsonSchema.compile("{\"type\": \"string\", \"pattern\": \"^[^a]$\"}"), "\"😀\""));
        assertEquals(1, verdict(JsonSchema.compile("{\"type\": \"string\", \"pattern\": \"^\\\\ud83d\\\\ude00$\"}"),
                "\"😀\""));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> JsonSchema.compile(
                "{\"type\": \"string\", \"minLength\": 18446744073709551616}")).getMessage().contains("longer than any"));
        assertEquals(1, verdict(JsonSchema.compile("{\"type\": \"string\", \"maxLength\": 18446744073709551616}"),
                "\"abc\""));
        assertEquals(1, verdict(JsonSchema.compile("{\"type\": \"string\", \"format\": \"date\", \"enum\": [\"x\", "
                + "\"2026-01-01\"]}"), "\"2026-01-01\""));
        // Formats this server does not enforce are annotations, as in JSON Schema 2020-12.
        assertEquals(1, verdict(JsonSchema.compile("{\"type\": \"string\", \"format\": \"email\"}"), "\"not an address\""));
    }

    @Test
    void numbersMatchTheirBoundsExactly() {
        String[] schemas = {"{\"type\": \"integer\", \"minimum\": 1, \"maximum\": 100}",
                "{\"type\": \"integer\", \"exclusiveMinimum\": -20, \"exclusiveMaximum\": 7}",
                "{\"type\": \"integer\", \"minimum\": 15}", "{\"type\": \"integer\", \"maximum\": -3}",
                "{\"type\": \"number\", \"minimum\": -1.5, \"maximum\": 2.25}",
                "{\"type\": \"number\", \"exclusiveMinimum\": 0, \"maximum\": 1}",
                "{\"type\": \"number\", \"minimum\": 0.5, \"exclusiveMaximum\": 0.75}",
                "{\"type\": \"number\", \"minimum\": 12.5}", "{\"type\": \"number\", \"maximum\": -0.001}",
                "{\"type\": \"integer\", \"minimum\": 5, \"exclusiveMinimum\": true}"};
        List<String> texts = numberTexts(5);
        for (String schemaJson : schemas) {
            JsonSchema s = JsonSchema.compile(schemaJson);
            Validator validator = schemaJson.contains("true") ? null : new Validator(schemaJson);
            int accepted = 0;
            for (String text : texts) {
                int v = verdict(s, text);
                // The subset written: integers without a fraction (JSON Schema also counts 1.0 as one).
                boolean syntax = text.matches(schemaJson.contains("integer") ? "-?(0|[1-9]\\d*)" : "-?(0|[1-9]\\d*)(\\.\\d+)?");
                if (v == 1) {
                    accepted++;
                    assertTrue(syntax, text);
                    if (validator != null) {
                        assertTrue(validator.valid(text), schemaJson + " wrote " + text + ": " + validator.errors(text));
                    }
                } else if (syntax && validator != null && validator.valid(text)) {
                    throw new AssertionError(schemaJson + " refused the valid " + text);
                }
                if (v >= 0) {
                    assertTrue(completable(s, text, 10), schemaJson + ": a dead end after " + text);
                }
            }
            assertTrue(accepted > 0, schemaJson);
        }
        // Draft 4's flag form: minimum 5, exclusive.
        JsonSchema draft4 = JsonSchema.compile(schemas[schemas.length - 1]);
        assertEquals(-1, verdict(draft4, "5 "));
        assertEquals(1, verdict(draft4, "6"));
        // Bounded numbers take no exponent and at most six decimals.
        JsonSchema unit = JsonSchema.compile(schemas[5]);
        assertEquals(-1, verdict(unit, "1e0"));
        assertEquals(1, verdict(unit, "0.000001"));
        assertEquals(-1, verdict(unit, "0.0000001"));
    }

    /** Numbers of up to n characters: every string over the digits, '-', '.' and 'e'. */
    private static List<String> numberTexts(int n) {
        List<String> out = new ArrayList<>();
        List<String> layer = List.of("");
        for (int k = 0; k < n; k++) {
            List<String> next = new ArrayList<>();
            for (String s : layer) {
                for (char c : "-0123456789.e".toCharArray()) {
                    next.add(s + c);
                }
            }
            out.addAll(next);
            layer = next;
        }
        return out;
    }

    /** Whether some completion of at most {@code more} characters from the pieces (or digits) finishes the text. */
    private static boolean completable(JsonSchema s, String text, int more) {
        SchemaCursor c = new SchemaCursor(s);
        if (!c.step(text.getBytes(StandardCharsets.UTF_8))) {
            return false;
        }
        return search(c, more);
    }

    private static boolean search(SchemaCursor c, int more) {
        if (c.complete()) {
            return true;
        }
        if (more == 0) {
            return false;
        }
        for (char ch : "0123456789.-\"".toCharArray()) {
            SchemaCursor next = c.copy();
            if (next.step(ch) && search(next, more - 1)) {
                return true;
            }
        }
        return false;
    }

    @Test
    void everyTakenPrefixOfAStringCanBeFinished() {
        // Each prefix the cursor takes, byte by byte, must have a whole answer: a dead end would leave
        // the model no token to write.
        for (String schemaJson : List.of("{\"type\": \"string\", \"pattern\": \"^[a-c]{2}-\\\\d$\", \"maxLength\": 4}",
                "{\"type\": \"string\", \"format\": \"date\"}", "{\"type\": \"string\", \"pattern\": \"^é+😀$\"}",
                "{\"type\": \"string\", \"pattern\": \"^\\\\n\\\\u0001$\"}")) {
            JsonSchema s = JsonSchema.compile(schemaJson);
            Random rng = new Random(3);
            for (int walk = 0; walk < 200; walk++) {
                SchemaCursor c = new SchemaCursor(s);
                java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
                for (int step = 0; step < 60 && !c.complete(); step++) {
                    List<Integer> ok = new ArrayList<>();
                    for (int b = 0; b < 256; b++) {
                        if (c.copy().step(b)) {
                            ok.add(b);
                        }
                    }
                    assertFalse(ok.isEmpty(), schemaJson + ": no byte can follow " + out.toString(StandardCharsets.UTF_8));
                    int b = ok.get(rng.nextInt(ok.size()));
                    assertTrue(c.step(b));
                    out.write(b);
                }
                if (c.complete()) {
                    String text = out.toString(StandardCharsets.UTF_8);
                    assertTrue(new Validator(schemaJson).valid(text), schemaJson + " wrote " + text);
                }
            }
        }
    }

    @Test
    void whatCannotBeHonouredIsRefusedByName() {
        for (String[] c : new String[][] {{"{\"type\": \"string\", \"pattern\": \"(?=a)\"}", "lookaround"},
                {"{\"type\": \"string\", \"minLength\": 3, \"maxLength\": 2}", "minLength/maxLength"},
                {"{\"type\": \"string\", \"pattern\": \"^abc$\", \"maxLength\": 2}", "allow no string"},
                {"{\"type\": \"string\", \"format\": \"date\", \"pattern\": \"^x\"}", "allow no string"},
                {"{\"type\": \"integer\", \"minimum\": 1.5, \"maximum\": 1.9}", "allow no integer"},
                {"{\"type\": \"number\", \"exclusiveMinimum\": 1, \"exclusiveMaximum\": 1.0000001}", "allow no number"},
                {"{\"type\": \"number\", \"maximum\": 1e20}", "beyond"},
                {"{\"type\": \"string\", \"minLength\": -1}", "non-negative"},
                {"{\"type\": \"array\", \"minItems\": 100000000}", "minItems 100000000 needs more characters than any"},
                {"{\"type\": \"number\", \"multipleOf\": 2}", "multipleOf"},
                {"{\"type\": \"string\", \"pattern\": \"(a|b)*a(a|b){12}(a|b)*c\"}", "automaton states"},
                {"{\"type\": \"string\", \"pattern\": \"^(a{1,60}){1,60}$\"}", "too ambiguous"},
                {"{\"type\": \"string\", \"pattern\": \"\\\\ud83d\"}", "lone surrogate"},
                {"{\"type\": \"string\", \"format\": \"date\", \"enum\": [\"x\"]}", "format"},
                {"{\"anyOf\": [" + "{\"const\": 1}, ".repeat(64) + "{\"const\": 2}]}", "65 alternatives; at most 64"}}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> JsonSchema.compile(c[0]), c[0]);
            assertTrue(e.getMessage().contains(c[1]), c[0] + ": " + e.getMessage());
        }
    }

    /** Random walks through the real vocabulary: masks equal brute force, no dead end, answers valid. */
    @Test
    void randomWalksWriteValidAnswers() {
        String schemaJson = """
                {"type": "object",
                 "properties": {
                   "id": {"type": "string", "format": "uuid"},
                   "day": {"type": "string", "format": "date"},
                   "code": {"type": "string", "pattern": "^[A-Z]{2}-\\\\d{3}$"},
                   "name": {"type": "string", "minLength": 2, "maxLength": 6},
                   "count": {"type": "integer", "minimum": 1, "maximum": 50},
                   "ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
                   "kind": {"oneOf": [{"type": "string", "pattern": "^(a|b)$"}, {"type": "integer", "minimum": 0}]}},
                 "required": ["id", "day", "code", "name", "count", "ratio", "kind"],
                 "additionalProperties": false}""";
        Tokenizer v3 = Tokenizer.deepSeekV3();
        JsonSchema s = JsonSchema.compile(schemaJson);
        TokenMask<SchemaCursor> mask = s.mask(v3);
        Validator validator = new Validator(schemaJson);
        Random rng = new Random(23);
        int finished = 0;
        for (int walk = 0; walk < 6; walk++) {
            SchemaCursor at = new SchemaCursor(s);
            int first = walk;
            byte[] bytes = Walks.walk(mask, v3, at, rng, 300, step -> first == 0 && step % 8 == 0);
            if (at.complete()) {
                String text = new String(bytes, StandardCharsets.UTF_8);
                assertTrue(validator.valid(text), text + ": " + validator.errors(text));
                finished++;
            }
        }
        assertTrue(finished >= 3, "walks that finished: " + finished);
    }

    /**
     * anyOf alternatives that start alike (pydantic's Union of two models): the cursor follows both
     * until a byte tells them apart; texts against the validator, walks through the real vocabulary.
     */
    @Test
    void unionsOfAlternativesThatStartAlike() {
        String schemaJson = """
                {"type": "array", "items": {"anyOf": [{"$ref": "#/$defs/Cat"}, {"$ref": "#/$defs/Dog"}]}, "minItems": 1,
                 "$defs": {
                   "Cat": {"type": "object", "properties": {"kind": {"const": "cat"},
                           "lives": {"type": "integer", "minimum": 1, "maximum": 9}},
                           "required": ["kind", "lives"], "additionalProperties": false},
                   "Dog": {"type": "object", "properties": {"kind": {"const": "dog"}, "good": {"type": "boolean"}},
                           "required": ["kind", "good"], "additionalProperties": false}}}""";
        JsonSchema s = JsonSchema.compile(schemaJson);
        Validator validator = new Validator(schemaJson);
        assertEquals(1, verdict(s, "[{\"kind\": \"cat\", \"lives\": 9}, {\"kind\": \"dog\", \"good\": true}]"));
        assertEquals(0, verdict(s, "[{\"kind\": \""), "either still");
        assertEquals(-1, verdict(s, "[{\"kind\": \"cat\", \"good\""));
        assertEquals(-1, verdict(s, "[{\"kind\": \"cow\""));
        assertTrue(validWalks(s, validator, 12, 400, 8) >= 3);
        // pydantic's discriminated union: oneOf of models told apart by a constant, so no value matches two.
        String tagged = schemaJson.replace("\"anyOf\"", "\"oneOf\"").replace("\"minItems\": 1,",
                "\"minItems\": 1, \"discriminator\": {\"propertyName\": \"kind\"},");
        JsonSchema oneOf = JsonSchema.compile(tagged);
        assertEquals(1, verdict(oneOf, "[{\"kind\": \"dog\", \"good\": false}]"));
        assertEquals(-1, verdict(oneOf, "[{\"kind\": \"dog\", \"lives\""));
        assertTrue(validWalks(oneOf, new Validator(tagged), 5, 400, 50) >= 3);
        // More ways than the cursor follows at once: the later ones are dropped, never a dead end.
        StringBuilder many = new StringBuilder("{\"anyOf\": [");
        for (int i = 0; i < 2 * SchemaCursor.MAX_PATHS; i++) {
            many.append(i == 0 ? "" : ", ").append("{\"const\": \"v").append(i).append("\"}");
            if (i % 60 == 59) { // nested, so that each list stays within the 64 alternatives a node may have
                many.append(", {\"anyOf\": [{\"const\": \"w\"}");
            }
        }
        many.append("]}]}]}");
        JsonSchema wide = JsonSchema.compile(many.toString());
        assertEquals(1, verdict(wide, "\"v0\""));
        SchemaCursor start = new SchemaCursor(wide);
        assertTrue(start.step('"'), "the value may start");
        assertTrue(validWalks(wide, new Validator(many.toString()), 3, 40, 1) >= 3);
        // Overlapping string alternatives: every short string against the validator.
        String strings = "{\"anyOf\": [{\"type\": \"string\", \"maxLength\": 2}, {\"type\": \"string\", \"pattern\": \"^a+$\"}]}";
        JsonSchema either = JsonSchema.compile(strings);
        Validator eitherValidator = new Validator(strings);
        for (String body : strings(3)) {
            String text = "\"" + body + "\"";
            assertEquals(eitherValidator.valid(text), verdict(either, text) == 1, text);
        }
    }

    /** What pydantic writes for dict[str, X] and tuple[X, Y]: maps with typed values, tuples by position. */
    @Test
    void mapsAndTuples() {
        String schemaJson = """
                {"type": "object",
                 "properties": {
                   "scores": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
                   "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}],
                            "minItems": 2, "maxItems": 2},
                   "head": {"type": "array", "prefixItems": [{"type": "boolean"}], "items": {"type": "null"}}},
                 "required": ["scores", "pair", "head"], "additionalProperties": false}""";
        JsonSchema s = JsonSchema.compile(schemaJson);
        Validator validator = new Validator(schemaJson);
        for (String ok : List.of("{\"scores\": {\"a\": 1, \"b\": 0}, \"pair\": [1, \"x\"], \"head\": [true, null, null]}",
                "{\"scores\": {}, \"pair\": [-2, \"\"], \"head\": []}")) {
            assertEquals(1, verdict(s, ok), ok);
            assertTrue(validator.valid(ok), ok);
        }
        for (String bad : List.of("{\"scores\": {\"a\": -1}", "{\"scores\": {\"a\": \"1\"}", "{\"scores\": {}, \"pair\": [\"x\"",
                "{\"scores\": {}, \"pair\": [1, 2", "{\"scores\": {}, \"pair\": [1, \"x\", ", "{\"scores\": {}, \"pair\": [1]",
                "{\"scores\": {}, \"pair\": [1, \"x\"], \"head\": [null")) {
            assertEquals(-1, verdict(s, bad), bad);
        }
        // pydantic's allOf of one $ref beside a description, and OpenAPI's nullable.
        JsonSchema wrapped = JsonSchema.compile("{\"type\": \"object\", \"properties\": {\"p\": {\"allOf\": [{\"$ref\": "
                + "\"#/$defs/P\"}], \"description\": \"a point\"}, \"n\": {\"type\": \"integer\", \"nullable\": true}}, "
                + "\"required\": [\"p\", \"n\"], \"$defs\": {\"P\": {\"type\": \"object\", \"properties\": {\"x\": "
                + "{\"type\": \"integer\"}}, \"required\": [\"x\"]}}}");
        assertEquals(1, verdict(wrapped, "{\"p\": {\"x\": 1}, \"n\": null}"));
        assertEquals(-1, verdict(wrapped, "{\"p\": {\"y\""));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> JsonSchema.compile(
                "{\"allOf\": [{\"type\": \"object\"}, {\"type\": \"object\"}]}")).getMessage().contains("allOf"));
        // Draft 7's tuple form: items as a list, additionalItems for the rest.
        JsonSchema old = JsonSchema.compile("{\"type\": \"array\", \"items\": [{\"type\": \"integer\"}], \"additionalItems\": false}");
        assertEquals(1, verdict(old, "[3]"));
        assertEquals(-1, verdict(old, "[3, 4"));
        assertEquals(-1, verdict(old, "[\"3\""));
        assertTrue(validWalks(s, validator, 8, 600, 25) >= 3);
    }

    /**
     * Six walks through the real vocabulary under the schema's mask, leaning on short closing tokens
     * so that maps and lists end; the first compares the mask with brute force every {@code bruteEvery}
     * steps. Every finished answer must pass the validator; returns how many finished.
     */
    private static int validWalks(JsonSchema s, Validator validator, long seed, int steps, int bruteEvery) {
        Tokenizer v3 = Tokenizer.deepSeekV3();
        TokenMask<SchemaCursor> mask = s.mask(v3);
        Random rng = new Random(seed);
        BitSet closing = new BitSet();
        for (int id = 0; id < v3.size(); id++) {
            String t = new String(v3.tokenBytes(id), StandardCharsets.UTF_8);
            if (t.length() <= 2 && (t.contains("}") || t.contains("]") || t.contains("\""))) {
                closing.set(id);
            }
        }
        int finished = 0;
        for (int walk = 0; walk < 6; walk++) {
            SchemaCursor at = new SchemaCursor(s);
            int first = walk;
            byte[] bytes = Walks.walk(mask, v3, at, rng, steps, step -> first == 0 && step % bruteEvery == 0, closing);
            if (at.complete()) {
                String text = new String(bytes, StandardCharsets.UTF_8);
                assertTrue(validator.valid(text), text + ": " + validator.errors(text));
                finished++;
            }
        }
        return finished;
    }

    /**
     * Far from maxLength, counts share one mask state (a mask is computed once for them), which is only
     * sound if no token can run into the bound: checked against brute force there, and near the bound.
     */
    @Test
    void countsFarFromTheBoundsShareAMask() {
        Tokenizer v3 = Tokenizer.deepSeekV3();
        int longest = 0;
        for (int id = 0; id < v3.size(); id++) {
            longest = Math.max(longest, v3.tokenBytes(id).length);
        }
        int max = longest + 300;
        JsonSchema s = JsonSchema.compile("{\"type\": \"string\", \"minLength\": 3, \"maxLength\": " + max + "}");
        SchemaCursor at = new SchemaCursor(s);
        assertTrue(at.step('"'));
        List<Object> keys = new ArrayList<>();
        List<SchemaCursor> copies = new ArrayList<>();
        for (int n = 0; n < max; n++) {
            keys.add(at.key(longest));
            copies.add(n == 3 || n == 298 ? at.copy() : null);
            if (n == 5 || n == 298 || n == max - 1) {
                assertEquals(BruteForce.allowed(v3, at), s.mask(v3).allowed(at), "after " + n + " characters");
            }
            assertTrue(at.step('x'));
        }
        assertEquals(keys.get(3), keys.get(298), "far from the bound: one state");
        assertFalse(keys.get(298).equals(keys.get(2)) || keys.get(298).equals(keys.get(max - 1)));
        assertFalse(at.copy().step('x'));
        assertFalse(copies.get(3).key().equals(copies.get(298).key()), "without a horizon every count is its own state");
    }

    @Test
    void boundsAreMovedOntoTheUnitGrid() {
        NumberBounds b = new NumberBounds(false, new BigDecimal("0.1234567"), false, new BigDecimal("2"), true, "#");
        assertEquals(123457, b.lo);
        assertEquals(1_999_999, b.hi);
        NumberBounds i = new NumberBounds(true, new BigDecimal("-2.5"), true, new BigDecimal("3"), true, "#");
        assertEquals(-2, i.lo);
        assertEquals(2, i.hi);
    }
}
