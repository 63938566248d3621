package dev.epic.text.output;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Set;
import org.junit.jupiter.api.Test;

class StreamingDecoderTest {

    @Test
    void twoByteCharSplitAcrossTokensIsHeldUntilComplete() {
        FixtureVocabulary v = new FixtureVocabulary();
        int caf = v.piece("caf");
        int e1 = v.rawBytes(0xC3);       // first byte of é
        int e2 = v.rawBytes(0xA9, 0x21); // second byte of é, then '!'
        StreamingDecoder d = new StreamingDecoder(v);
        assertEquals("caf", d.push(caf));
        assertEquals("", d.push(e1));
        assertTrue(d.hasPending());
        assertEquals("é!", d.push(e2));
        assertFalse(d.hasPending());
        assertEquals("", d.finish());
    }

    @Test
    void fourByteEmojiOverThreeTokens() {
        FixtureVocabulary v = new FixtureVocabulary();
        int a = v.rawBytes(0xF0);
        int b = v.rawBytes(0x9F, 0x98);
        int c = v.rawBytes(0x80);
        StreamingDecoder d = new StreamingDecoder(v);
        assertEquals("", d.push(a));
        assertEquals("", d.push(b));
        assertEquals("😀", d.push(c));
    }

    @Test
    void finishReplacesADanglingSequence() {
        FixtureVocabulary v = new FixtureVocabulary();
        int x = v.piece("x");
        int half = v.rawBytes(0xE2, 0x82); // 2 of the 3 bytes of €
        StreamingDecoder d = new StreamingDecoder(v);
        assertEquals("x", d.push(x));
        assertEquals("", d.push(half));
        assertEquals("\uFFFD", d.finish());
    }

    @Test
    void invalidBytesAreReplacedAtOnce() {
        FixtureVocabulary v = new FixtureVocabulary();
        int stray = v.rawBytes(0x80, 0x41);   // lone continuation byte then 'A'
        int broken = v.rawBytes(0xE2, 0x42);  // lead byte interrupted by 'B'
        StreamingDecoder d = new StreamingDecoder(v);
        assertEquals("\uFFFDA", d.push(stray));
        assertEquals("\uFFFDB", d.push(broken));
    }

    @Test
    void maximalSubpartReplacementIndependentOfSplit() {
        // Each maximal invalid subpart is one U+FFFD (as HF tokenizers / Rust from_utf8_lossy), however split.
        int[][] bytes = {
            {0xED, 0xA0, 0x80},             // encoded surrogate: 3 subparts
            {0xF4, 0x90, 0x80, 0x80},       // above U+10FFFF: 4
            {0xC0, 0x80},                   // overlong: 2
            {0xE0, 0x80},                   // overlong: 2
            {0xF0, 0x9F, 0x41},             // truncated emoji then 'A': 1 + A
            {0xE2, 0x82, 0xAC, 0xE2, 0x82}, // euro then a dangling prefix: € + 1 at finish
        };
        String[] expected = {"\uFFFD\uFFFD\uFFFD", "\uFFFD\uFFFD\uFFFD\uFFFD", "\uFFFD\uFFFD", "\uFFFD\uFFFD",
            "\uFFFDA", "€\uFFFD"};
        for (int c = 0; c < bytes.length; c++) {
            for (int split = 1; split <= bytes[c].length; split++) {
                FixtureVocabulary v = new FixtureVocabulary();
                StreamingDecoder d = new StreamingDecoder(v);
                StringBuilder text = new StringBuilder();
                java.util.List<Integer> ids = new java.util.ArrayList<>();
                for (int i = 0; i < bytes[c].length; i += split) {
                    ids.add(v.rawBytes(java.util.Arrays.copyOfRange(bytes[c], i, Math.min(bytes[c].length, i + split))));
                }
                for (int id : ids) {
                    text.append(d.push(id));
                }
                text.append(d.finish());
                assertEquals(expected[c], text.toString(), "case " + c + " split " + split);
            }
        }
    }

    @Test
    void skipsSpecialTokensExceptTheKeptOnes() {
        FixtureVocabulary v = FixtureVocabulary.deepSeekLike(true);
        int keepMe = v.addSpecial("<keep>");
        int bos = v.id("<｜begin▁of▁sentence｜>");
        int hi = v.piece("hi");
        int calls = v.id(DeepSeekMarkers.TOOL_CALLS_BEGIN); // added but not special: always decoded
        StreamingDecoder skip = new StreamingDecoder(v, true, Set.of(keepMe)::contains);
        assertEquals("", skip.push(bos));
        assertEquals("hi", skip.push(hi));
        assertEquals("<keep>", skip.push(keepMe));
        assertEquals(DeepSeekMarkers.TOOL_CALLS_BEGIN, skip.push(calls));
        StreamingDecoder all = new StreamingDecoder(v);
        assertEquals("<｜begin▁of▁sentence｜>", all.push(bos));
    }

    @Test
    void rejectsIdsOutsideTheVocabulary() {
        FixtureVocabulary v = new FixtureVocabulary();
        v.piece("a");
        StreamingDecoder d = new StreamingDecoder(v);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> d.push(5));
        assertTrue(e.getMessage().contains("5"), e.getMessage());
    }

    @Test
    void longTokensGrowTheBuffer() {
        FixtureVocabulary v = new FixtureVocabulary();
        String big = "ü".repeat(500);
        int t = v.piece(big);
        StreamingDecoder d = new StreamingDecoder(v);
        assertEquals(big, d.push(t));
        assertEquals(big, d.push(t));
    }
}
