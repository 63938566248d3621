package dev.epic.text.tokenizer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.DynamicTest.dynamicTest;

import dev.epic.text.Golden;
import java.io.IOException;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

/** Every line of the reference encode/decode goldens, exactly. */
class TokenizerGoldenTest {
    static Tokenizer v3;
    static Tokenizer r1;

    @BeforeAll
    static void load() throws IOException {
        v3 = Tokenizer.deepSeekV3();
        r1 = Tokenizer.fromModelDir(Golden.r1ModelDir());
    }

    @TestFactory
    Stream<DynamicTest> encodeV3() {
        return encodeLines("encode.jsonl", () -> v3);
    }

    @TestFactory
    Stream<DynamicTest> encodeR1Think() {
        return encodeLines("encode_r1_think.jsonl", () -> r1);
    }

    private Stream<DynamicTest> encodeLines(String file, java.util.function.Supplier<Tokenizer> tok) {
        return Golden.lines(file).stream().map(line -> dynamicTest(line.get("id").asText(), () -> {
            String text = line.get("text").asText();
            int[] expected = Golden.ints(line.get("ids"));
            int[] ids = tok.get().encode(text);
            assertArrayEquals(expected, ids, () -> line.get("id").asText() + ": encode(" + abbreviate(text) + ")");
            assertEquals(text, tok.get().decode(ids), "roundtrip decode(encode(text))");
            int[] withBos = tok.get().encodeWithBos(text);
            assertEquals(0, withBos[0]);
            assertArrayEquals(expected, java.util.Arrays.copyOfRange(withBos, 1, withBos.length), "BOS mode");
        }));
    }

    @TestFactory
    Stream<DynamicTest> decodeV3() {
        return Golden.lines("decode.jsonl").stream().map(line -> dynamicTest(line.get("id").asText(), () -> {
            int[] ids = Golden.ints(line.get("ids"));
            boolean skip = line.get("skip_special_tokens").asBoolean();
            assertEquals(line.get("text").asText(), v3.decode(ids, skip));
        }));
    }

    private static String abbreviate(String s) {
        return s.length() <= 80 ? s : s.substring(0, 80) + "...(" + s.length() + " chars)";
    }

}
