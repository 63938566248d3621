package dev.epic.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.JsonNode;
import dev.epic.text.Golden;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * Checks the heap-based BPE against the textbook definition (rescan for the lowest-ranked pair, leftmost first)
 * on random single-piece words from many scripts, using merges read independently from the shipped file.
 */
class BpeReferenceTest {
    private static Map<String, Integer> ranks;
    private static Map<String, Integer> vocab;

    @BeforeAll
    static void load() throws IOException {
        JsonNode model;
        try (InputStream in = new GZIPInputStream(
                Tokenizer.class.getResourceAsStream(Tokenizer.SHIPPED_TOKENIZER))) {
            model = Golden.JSON.readTree(in).get("model");
        }
        ranks = new HashMap<>();
        int r = 0;
        for (JsonNode m : model.get("merges")) {
            ranks.put(m.asText(), r++);
        }
        vocab = new HashMap<>();
        model.get("vocab").properties().forEach(e -> vocab.put(e.getKey(), e.getValue().asInt()));
    }

    /** Textbook BPE: O(n^2), obviously correct. */
    private static int[] naive(String piece) {
        List<String> symbols = new ArrayList<>();
        for (byte b : piece.getBytes(StandardCharsets.UTF_8)) {
            symbols.add(String.valueOf(ByteLevel.charOf(b)));
        }
        while (true) {
            int best = -1;
            int bestRank = Integer.MAX_VALUE;
            for (int i = 0; i + 1 < symbols.size(); i++) {
                Integer rank = ranks.get(symbols.get(i) + " " + symbols.get(i + 1));
                if (rank != null && rank < bestRank) {
                    bestRank = rank;
                    best = i;
                }
            }
            if (best < 0) {
                break;
            }
            symbols.set(best, symbols.get(best) + symbols.remove(best + 1));
        }
        return symbols.stream().mapToInt(vocab::get).toArray();
    }

    @Test
    void randomWordsMatchTextbookBpe() {
        String[] alphabets = {"abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "абвгдежзийклмнопрстуфхцчшщъыьэюя",
            "αβγδεζηθικλμνξοπρστυφχψω", "אבגדהוזחטיכלמנסעפצקרשת", "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह",
            "ㄱㄴㄷㄹㅁㅂㅅㅇㅈㅊㅋㅌㅍㅎ가나다라마바사아자차카타파하", "éèêëàâäôöûüçñß"};
        Random rnd = new Random(42);
        Tokenizer t = Tokenizer.deepSeekV3();
        for (int n = 0; n < 300; n++) {
            String alphabet = alphabets[rnd.nextInt(alphabets.length)];
            int len = 1 + (n % 10 == 0 ? rnd.nextInt(400) : rnd.nextInt(12));
            StringBuilder b = new StringBuilder();
            for (int i = 0; i < len; i++) {
                b.append(alphabet.charAt(rnd.nextInt(Math.min(alphabet.length(), 4 + rnd.nextInt(alphabet.length())))));
            }
            String word = b.toString();
            assertArrayEquals(naive(word), t.encode(word), word);
        }
    }

    @Test
    void repetitiveRunsMatchTextbookBpe() {
        Tokenizer t = Tokenizer.deepSeekV3();
        for (String unit : new String[] {"a", "ab", "abc", "ー", "哈", "ла"}) {
            for (int reps : new int[] {1, 2, 3, 5, 8, 17, 64, 257}) {
                String word = unit.repeat(reps);
                assertArrayEquals(naive(word), t.encode(word), unit + " x " + reps);
            }
        }
        assertEquals(" ".repeat(256), t.decode(naive(" ".repeat(256))));
        for (int n : new int[] {1, 2, 7, 16, 33, 255, 256}) {
            String spaces = " ".repeat(n);
            assertArrayEquals(naive(spaces), t.encode(spaces), n + " spaces");
        }
    }
}
