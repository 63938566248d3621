package dev.epic.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.epic.text.TextException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Held-out-style properties of the V3 tokenizer, vocabulary facts, and error handling. */
class TokenizerTest {
    private static final Tokenizer T = Tokenizer.deepSeekV3();

    private static int[] concat(int[]... parts) {
        return Arrays.stream(parts).flatMapToInt(IntStream::of).toArray();
    }

    @Test
    void vocabularyFacts() {
        assertEquals(128815, T.size());
        assertEquals(0, T.bosId().orElseThrow());
        assertEquals(1, T.eosId().orElseThrow());
        assertEquals(128803, T.addedTokenId("<｜User｜>").orElseThrow());
        assertEquals(128805, T.addedTokenId("<|EOT|>").orElseThrow());
        assertTrue(T.isSpecial(0) && T.isSpecial(128799) && T.isSpecial(128805));
        assertFalse(T.isSpecial(128803) || T.isSpecial(128814) || T.isSpecial(3));
        assertArrayEquals(" ".getBytes(StandardCharsets.UTF_8), T.tokenBytes(223));
        assertArrayEquals("<｜User｜>".getBytes(StandardCharsets.UTF_8), T.tokenBytes(128803));
        assertTrue(T.addedTokenId("<think>").isEmpty(), "V3 has no <think> token");
        assertArrayEquals(new int[] {30, 37947, 32}, T.encode("<think>"));
    }

    @Test
    void addedTokensSplitTextAnywhereWithoutStrippingNeighbours() {
        String[] sides = {"", "x", " ", "  hello ", "数字123", "\n\n", "<", "<｜", "｜>", "a<｜User"};
        for (String a : sides) {
            for (String b : sides) {
                assertArrayEquals(concat(T.encode(a), new int[] {128803}, T.encode(b)),
                        T.encode(a + "<｜User｜>" + b), () -> "around <｜User｜>: [" + a + "] [" + b + "]");
            }
        }
    }

    @Test
    void nearMissesOfAddedTokensAreOrdinaryText() {
        for (String s : new String[] {"<｜User｜", "<|User|>", "<｜user｜>", "<｜User ｜>", "｜User｜>", "<｜User｜ >",
                "<|EOT|", "<|eot|>", "<｜end▁of▁sentence|>", "<｜end_of_sentence｜>"}) {
            int[] ids = T.encode(s);
            assertTrue(Arrays.stream(ids).allMatch(id -> id < 128000), () -> s + " -> " + Arrays.toString(ids));
            assertEquals(s, T.decode(ids));
        }
        // Longest at a position, leftmost first: "<<|EOT|>" is "<" then the token.
        int[] ids = T.encode("<<|EOT|>|>");
        assertEquals(128805, ids[1]);
        assertEquals("<<|EOT|>|>", T.decode(ids));
    }

    @Test
    void digitsAreSplitInGroupsOfThreeFromTheLeft() {
        assertArrayEquals(concat(T.encode("123"), T.encode("456"), T.encode("7")), T.encode("1234567"));
        // Other scripts' digits are \p{N} too (Arabic-Indic, full-width, superscript).
        assertArrayEquals(concat(T.encode("١٢٣"), T.encode("٤")), T.encode("١٢٣٤"));
        assertArrayEquals(concat(T.encode("１２３"), T.encode("４５")), T.encode("１２３４５"));
    }

    @Test
    void cjkRunsAreIsolatedFromNeighbouringText() {
        assertArrayEquals(concat(T.encode("abc"), T.encode("你好世界"), T.encode(" def")), T.encode("abc你好世界 def"));
        assertArrayEquals(concat(T.encode("カタカナ"), T.encode("한국어")), T.encode("カタカナ한국어"));
    }

    @Test
    void oddWhitespaceRoundTrips() {
        String[] samples = {"a\u00a0b", "a\u3000\u3000b", "x\u2028y\u2029z", "\u0085\u0085", "a\ufeffb", "a\u200bb",
            "\t \n \u000b\u000c\r\n", "  \u00a0 \n", "\u2000\u2001\u2002\u200a", " ".repeat(300) + "x",
            "\n".repeat(50), "a\u180eb", "e\u0301\u0301\u0301", "👩‍👩‍👧‍👦🏳️‍🌈", "\ud83d\ude00".repeat(40),
            "مرحبا بالعالم", "नमस्ते दुनिया", "Привет, мир!", "ᚠᛇᚻ᛫ᛒᛦᚦ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "\u0000\u0001\u007f"};
        for (String s : samples) {
            assertEquals(s, T.decode(T.encode(s)), () -> "roundtrip of " + s.codePoints().mapToObj(Integer::toHexString).toList());
        }
    }

    @Test
    void nbspAndIdeographicSpaceAreWhitespaceButBomAndZwspAreNot() {
        // "\s+(?!\S)" keeps the last whitespace char for the next word only when \s matches it.
        assertArrayEquals(concat(T.encode("a"), T.encode("\u3000"), T.encode("\u3000b")), T.encode("a\u3000\u3000b"));
        // U+FEFF is not \s: it is the optional non-letter prefix of the word that follows.
        assertArrayEquals(concat(T.encode("a"), T.encode("\ufeffb")), T.encode("a\ufeffb"));
    }

    @Test
    void longPiecesEncodeExactlyAndRoundTrip() {
        String word = "ab".repeat(2500) + "z".repeat(3000);
        int[] ids = T.encode(word);
        assertEquals(word, T.decode(ids));
        assertTrue(ids.length < word.length(), "merges happened");
        String spaces = " ".repeat(256);
        assertEquals(spaces, T.decode(T.encode(spaces)));
        String han = "中".repeat(300);
        assertEquals(han, T.decode(T.encode(han)));
    }

    @Test
    void concurrentEncodingGivesTheSameIds() throws Exception {
        String[] texts = new String[64];
        for (int i = 0; i < texts.length; i++) {
            texts[i] = "Thread-safe text " + i + " 数字" + (i * 7919) + " émoji 😀 " + "ab".repeat(i);
        }
        int[][] expected = new int[texts.length][];
        for (int i = 0; i < texts.length; i++) {
            expected[i] = T.encode(texts[i]);
        }
        try (var pool = java.util.concurrent.Executors.newFixedThreadPool(4)) {
            var futures = new java.util.ArrayList<java.util.concurrent.Future<Boolean>>();
            for (int t = 0; t < 4; t++) {
                futures.add(pool.submit(() -> {
                    for (int rep = 0; rep < 20; rep++) {
                        for (int i = 0; i < texts.length; i++) {
                            if (!Arrays.equals(expected[i], T.encode(texts[i]))) {
                                return false;
                            }
                        }
                    }
                    return true;
                }));
            }
            for (var f : futures) {
                assertTrue(f.get());
            }
        }
    }

    @Test
    void bosModePrependsExactlyBos() {
        assertArrayEquals(new int[] {0}, T.encodeWithBos(""));
        assertArrayEquals(concat(new int[] {0}, T.encode("Hello")), T.encodeWithBos("Hello"));
    }

    @Test
    void decodeSkipsOnlySpecialTokens() {
        int[] ids = concat(new int[] {0, 128803}, T.encode("hi"), new int[] {128804, 1, 128000});
        assertEquals("<｜User｜>hi<｜Assistant｜>", T.decode(ids, true));
        assertEquals("<｜begin▁of▁sentence｜><｜User｜>hi<｜Assistant｜><｜end▁of▁sentence｜><｜place▁holder▁no▁0｜>",
                T.decode(ids, false));
    }

    @Test
    void loneSurrogatesAreRejected() {
        TextException e = assertThrows(TextException.class, () -> T.encode("ok\ud800x"));
        assertTrue(e.getMessage().contains("U+D800") && e.getMessage().contains("index 2"), e.getMessage());
        assertThrows(TextException.class, () -> T.encode("\udc00"));
        assertThrows(TextException.class, () -> T.encode("end\ud83d"));
    }

    @Test
    void unknownIdsAreRejected() {
        assertThrows(TextException.class, () -> T.decode(new int[] {128815}));
        assertThrows(TextException.class, () -> T.decode(new int[] {-1}));
        assertThrows(TextException.class, () -> T.tokenBytes(129279));
    }

    @Test
    void modelDirWithoutTokenizerUsesTheShippedOne(@TempDir Path dir) {
        assertSame(T, Tokenizer.fromModelDir(dir));
        assertThrows(TextException.class, () -> Tokenizer.fromModelDir(dir.resolve("missing")));
    }

    @Test
    void brokenTokenizerFilesAreRejectedNamingTheProblem(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("tokenizer.json");
        Files.writeString(f, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0");
        TextException truncated = assertThrows(TextException.class, () -> Tokenizer.fromModelDir(dir));
        assertTrue(truncated.getMessage().contains(f.toString()), truncated.getMessage());

        Files.writeString(f, """
                {"pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false},
                 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}""");
        TextException merge = assertThrows(TextException.class, () -> Tokenizer.fromModelDir(dir));
        assertTrue(merge.getMessage().contains("model.merges[0]"), merge.getMessage());

        Files.writeString(f, """
                {"model": {"type": "WordPiece", "vocab": {"a": 0}, "merges": []}}""");
        assertThrows(TextException.class, () -> Tokenizer.fromModelDir(dir));
    }

    @Test
    void mergesMayComeBeforeTheVocab(@TempDir Path dir) throws IOException {
        Files.writeString(dir.resolve("tokenizer.json"), """
                {"model": {"merges": [["b", "c"], ["a", "bc"]], "type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2,
                 "bc": 3, "abc": 4}},
                 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}}""");
        Tokenizer t = Tokenizer.read(dir.resolve("tokenizer.json"), TokenizerConfig.deepSeekV3());
        assertArrayEquals(new int[] {4, 3}, t.encode("abcbc"));
        assertArrayEquals(new int[] {4, 4}, t.encode("abcabc"));
        assertArrayEquals(new int[] {2, 0, 1}, t.encode("cab"));
    }

    @Test
    void mergeTableGrowsBeyondItsInitialCapacity() {
        MergeTable table = new MergeTable(4);
        for (int i = 0; i < 300_000; i++) {
            table.put(i, i * 7 + 1, i, i + 5);
        }
        table.put(3, 22, 999, 1000); // same pair again: the later entry wins, as in the reference
        assertEquals(300_000, table.size());
        for (int i = 0; i < 300_000; i += 997) {
            long e = table.get(i, i * 7 + 1);
            assertEquals(i == 3 ? 999 : i, MergeTable.rank(e));
            assertEquals(i == 3 ? 1000 : i + 5, MergeTable.mergedId(e));
        }
        assertEquals(MergeTable.MISSING, table.get(1, 1));
    }

    @Test
    void smallHandWrittenTokenizerFollowsRanksAndByteLevelRules(@TempDir Path dir) throws IOException {
        // Vocab of byte-level chars a, b, c plus merges; ranks decide: "b c" (rank 0) beats "a b" (rank 1).
        Files.writeString(dir.resolve("tokenizer.json"), """
                {"added_tokens": [{"id": 7, "content": "<X>", "special": true}],
                 "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
                 "decoder": {"type": "ByteLevel"},
                 "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "c": 2, "bc": 3, "ab": 4, "abc": 5, "Ġ": 6},
                           "merges": ["b c", "a bc", "a b"]}}""");
        Files.writeString(dir.resolve("tokenizer_config.json"), "{\"bos_token\": \"<X>\"}");
        Tokenizer t = Tokenizer.fromModelDir(dir);
        assertArrayEquals(new int[] {5}, t.encode("abc"));
        assertArrayEquals(new int[] {4, 4}, t.encode("abab"));
        assertArrayEquals(new int[] {7, 0, 6, 3}, t.encodeWithBos("a bc"));
        assertEquals("a bc", t.decode(new int[] {7, 0, 6, 3}, true));
        TextException e = assertThrows(TextException.class, () -> t.encode("d"));
        assertTrue(e.getMessage().contains("0x64"), e.getMessage());
    }
}
