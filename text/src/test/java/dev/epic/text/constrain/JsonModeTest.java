package dev.epic.text.constrain;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * JSON mode's automaton (the schema automaton on {@link JsonSchema#ANY_OBJECT}) against hand-picked
 * texts and, differentially, against Jackson's strict parser and Java's strict UTF-8 decoder.
 */
class JsonModeTest {
    private static final ObjectMapper STRICT = new ObjectMapper().enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    /** -1: some byte cannot follow; 0: a valid prefix; 1: a whole object. */
    private static int verdict(byte[] text) {
        SchemaCursor c = new SchemaCursor(JsonSchema.ANY_OBJECT);
        for (byte b : text) {
            if (!c.step(b & 0xff)) {
                return -1;
            }
        }
        return c.complete() ? 1 : 0;
    }

    private static int verdict(String text) {
        return verdict(text.getBytes(StandardCharsets.UTF_8));
    }

    @Test
    void wholeObjects() {
        for (String ok : List.of("{}", " {\"a\": 1}\n", "{\"a\":[1,-2.5e+3,0,0.1,1E9,true,false,null,\"x\"]}",
                "{\"k\": {\"n\": {\"m\": []}}, \"s\": \"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\"}", "{\"é😀\": \"日本\"}",
                "{\"a\":{}}", "{\"a\":[[],[{}]]}", "{\"n\": -0}", "{\"n\": 0e1}")) {
            assertEquals(1, verdict(ok), ok);
        }
    }

    @Test
    void prefixesAreNotYetWhole() {
        for (String prefix : List.of("", "  ", "{", "{\"a", "{\"a\"", "{\"a\":", "{\"a\": tr", "{\"a\": 12", "{\"a\": 1.",
                "{\"a\": \"\\u00", "{\"a\": [1,", "{\"a\": \"\\")) {
            assertEquals(0, verdict(prefix), prefix);
        }
    }

    @Test
    void invalidTexts() {
        for (String bad : List.of("[]", "1", "\"s\"", "{,}", "{\"a\" 1}", "{\"a\":1,}", "{\"a\": 01}", "{\"a\": .5}",
                "{\"a\": 1.}", "{\"a\": -}", "{\"a\": tru }", "{\"a\": [1}", "{\"a\": {]}", "{} {}", "{}x", "{'a': 1}",
                "{\"a\": \"\\x\"}", "{\"a\": \"\\u12G4\"}", "{\"a\": \"tab\there\"}", "{\"a\": +1}", "{a: 1}",
                "{\"a\": NaN}", "{\"a\": 1e}")) {
            assertEquals(-1, verdict(bad), bad);
        }
        assertEquals(-1, verdict(new byte[] {'{', '"', (byte) 0x80, '"'}), "a lone continuation byte");
        assertEquals(-1, verdict(new byte[] {'{', '"', (byte) 0xc3, 'a'}), "a lead byte without its continuation");
        assertEquals(-1, verdict(new byte[] {'{', '"', (byte) 0xff}), "a byte UTF-8 never uses");
        assertEquals(-1, verdict("{" + " ".repeat(SchemaPath.maxWhitespace(1) + 1)), "endless whitespace");
        assertEquals(-1, verdict("{\"a\":" + "[".repeat(SchemaPath.MAX_FRAMES)), "nesting past the cap");
    }

    /** Random edits of valid objects: whatever the automaton calls whole, Jackson parses as an object, and the reverse. */
    @Test
    void agreesWithJacksonOnRandomEdits() throws Exception {
        String[] seeds = {"{\"a\": [1, 2.5, -3e2, true, null], \"b\": {\"c\": \"d\\n\\u0041\"}, \"e\": false}",
                "{\"x\":{\"y\":[{\"z\":0}]},\"w\":\"é\"}", "{\"n\": 10, \"list\": [\"p\", \"q\"], \"o\": {}}"};
        String alphabet = "{}[]:,\" \\.-+eE0123456789tfnrulsaxyz\n";
        Random rng = new Random(7);
        int whole = 0, rejected = 0;
        for (int trial = 0; trial < 20_000; trial++) {
            StringBuilder s = new StringBuilder(seeds[trial % seeds.length]);
            for (int edits = 1 + rng.nextInt(3); edits > 0; edits--) {
                int at = rng.nextInt(s.length() + 1);
                switch (rng.nextInt(3)) {
                    case 0 -> s.insert(at, alphabet.charAt(rng.nextInt(alphabet.length())));
                    case 1 -> { if (at < s.length()) s.deleteCharAt(at); }
                    default -> { if (at < s.length()) s.setCharAt(at, alphabet.charAt(rng.nextInt(alphabet.length()))); }
                }
            }
            String text = s.toString();
            boolean jackson;
            try {
                JsonNode n = STRICT.readTree(text);
                jackson = n != null && n.isObject();
            } catch (Exception e) {
                jackson = false;
            }
            int v = verdict(text);
            assertEquals(jackson, v == 1, text);
            whole += v == 1 ? 1 : 0;
            rejected += v == -1 ? 1 : 0;
        }
        assertTrue(whole > 1000 && rejected > 1000, "the edits cover both sides: " + whole + " whole, " + rejected + " rejected");
    }

    /** RFC 3629 exactly: whatever Java's strict UTF-8 decoder refuses inside a string, the automaton refuses too. */
    @Test
    void stringsAreStrictUtf8() throws Exception {
        assertEquals(-1, verdict(new byte[] {'{', '"', (byte) 0xed, (byte) 0xa0, (byte) 0x80}), "a surrogate");
        assertEquals(-1, verdict(new byte[] {'{', '"', (byte) 0xe0, (byte) 0x80, (byte) 0x80}), "an overlong form");
        assertEquals(-1, verdict(new byte[] {'{', '"', (byte) 0xf4, (byte) 0x90}), "past U+10FFFF");
        java.nio.charset.CharsetDecoder strict = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(java.nio.charset.CodingErrorAction.REPORT)
                .onUnmappableCharacter(java.nio.charset.CodingErrorAction.REPORT);
        Random rng = new Random(11);
        int valid = 0;
        for (int trial = 0; trial < 50_000; trial++) {
            byte[] body = new byte[1 + rng.nextInt(5)];
            for (int i = 0; i < body.length; i++) {
                body[i] = (byte) (rng.nextInt(4) == 0 ? 'a' + rng.nextInt(26) : 0x80 + rng.nextInt(128));
            }
            byte[] text = new byte[body.length + 7];
            System.arraycopy("{\"k\":\"".getBytes(StandardCharsets.UTF_8), 0, text, 0, 6);
            System.arraycopy(body, 0, text, 6, body.length);
            text[text.length - 1] = '"';
            boolean decodes;
            try {
                strict.decode(java.nio.ByteBuffer.wrap(body));
                decodes = true;
            } catch (java.nio.charset.CharacterCodingException e) {
                decodes = false;
            }
            assertEquals(decodes, verdict(text) == 0, () -> java.util.HexFormat.of().formatHex(body));
            valid += decodes ? 1 : 0;
        }
        assertTrue(valid > 1000, "valid sequences drawn: " + valid);
    }

    @Test
    void aCopyMovesOnAlone() {
        SchemaCursor a = new SchemaCursor(JsonSchema.ANY_OBJECT);
        assertTrue(a.step("{\"k\": ".getBytes(StandardCharsets.UTF_8)));
        SchemaCursor b = a.copy();
        assertTrue(b.step("1}".getBytes(StandardCharsets.UTF_8)));
        assertTrue(b.complete());
        assertFalse(a.complete());
        SchemaCursor again = new SchemaCursor(JsonSchema.ANY_OBJECT);
        assertTrue(again.step("{\"k\": ".getBytes(StandardCharsets.UTF_8)));
        assertEquals(a.key(), again.key(), "the same text, the same state");
        SchemaCursor nested = new SchemaCursor(JsonSchema.ANY_OBJECT);
        assertTrue(nested.step("{\"a\": {}, \"b\": [[]], \"c\": ".getBytes(StandardCharsets.UTF_8)));
        SchemaCursor flat = new SchemaCursor(JsonSchema.ANY_OBJECT);
        assertTrue(flat.step("{\"c\": ".getBytes(StandardCharsets.UTF_8)));
        assertEquals(flat.key(), nested.key(), "closed containers leave no trace in the state");
    }
}
